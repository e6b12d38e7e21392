// Package nettest gives tests a multicast group of their own on loopback,
// and pairs of network namespaces joined by a veth link.
package nettest

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
)

// LoopbackGroup picks an organization-local group and a port that is free
// right now, so parallel test binaries do not hear each other.
func LoopbackGroup(t testing.TB) *net.UDPAddr {
	t.Helper()
	c, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("finding a free port: %v", err)
	}
	port := c.LocalAddr().(*net.UDPAddr).Port
	c.Close()
	return &net.UDPAddr{IP: net.IPv4(239, 255, byte(1+rand.IntN(254)), byte(1+rand.IntN(254))), Port: port}
}

// Pair is two network namespaces joined by a veth pair, addressed in
// 192.0.2.0/24 (TEST-NET-1).
type Pair struct {
	A, B         string // namespace names
	IfA, IfB     string // the veth ends inside them
	AddrA, AddrB string
}

var pairs atomic.Int32

// VethPair creates the namespaces and the link, removed (with anything
// still running inside) when the test ends.
func VethPair(t testing.TB) *Pair {
	t.Helper()
	id := fmt.Sprintf("%d-%d", os.Getpid()%100000, pairs.Add(1))
	p := &Pair{A: "sma-" + id, B: "smb-" + id, IfA: "sva" + id, IfB: "svb" + id, AddrA: "192.0.2.1", AddrB: "192.0.2.2"}
	p.IfA, p.IfB = p.IfA[:min(15, len(p.IfA))], p.IfB[:min(15, len(p.IfB))]
	for _, ns := range []string{p.A, p.B} {
		run(t, "ip", "netns", "add", ns)
		t.Cleanup(func() { deleteNetns(t, ns) })
	}
	run(t, "ip", "link", "add", p.IfA, "netns", p.A, "type", "veth", "peer", "name", p.IfB, "netns", p.B)
	for _, n := range []struct{ ns, ifc, addr string }{{p.A, p.IfA, p.AddrA}, {p.B, p.IfB, p.AddrB}} {
		run(t, "ip", "-n", n.ns, "addr", "add", n.addr+"/24", "dev", n.ifc)
		run(t, "ip", "-n", n.ns, "link", "set", n.ifc, "up")
		run(t, "ip", "-n", n.ns, "link", "set", "lo", "up")
	}
	return p
}

// SetLink brings the link between the two namespaces down or up: a
// partition, and its healing.
func (p *Pair) SetLink(t testing.TB, up bool) {
	t.Helper()
	state := "down"
	if up {
		state = "up"
	}
	run(t, "ip", "-n", p.A, "link", "set", p.IfA, state)
}

func deleteNetns(t testing.TB, name string) {
	if out, err := exec.Command("ip", "netns", "pids", name).Output(); err == nil {
		for _, f := range strings.Fields(string(out)) {
			if pid, err := strconv.Atoi(f); err == nil {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	}
	if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
		t.Errorf("ip netns del %s: %v: %s", name, err, out)
	}
}

func run(t testing.TB, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v: %s", name, strings.Join(args, " "), err, out)
	}
}
