// Package nettest gives tests a multicast group of their own on loopback,
// pairs of network namespaces joined by a veth link, and small LANs of
// namespaces on a bridge.
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
	"testing"

	"golang.org/x/sys/unix"
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
	p.IfA, p.IfB = ifName(p.IfA), ifName(p.IfB)
	addNetns(t, p.A)
	addNetns(t, p.B)
	run(t, "ip", "link", "add", p.IfA, "netns", p.A, "type", "veth", "peer", "name", p.IfB, "netns", p.B)
	addressUp(t, p.A, p.IfA, p.AddrA)
	addressUp(t, p.B, p.IfB, p.AddrB)
	return p
}

var namespaces atomic.Int32

// Namespace creates a network namespace of the test's own with its
// loopback up (127.0.0.1 inside), and returns its name. It is deleted,
// with anything still running inside, when the test ends.
func Namespace(t testing.TB) string {
	t.Helper()
	name := fmt.Sprintf("smt-%d-%d", os.Getpid()%100000, namespaces.Add(1))
	addNetns(t, name)
	return name
}

// addNetns creates namespace name with its loopback up, deleted (with
// anything still running inside) when the test ends.
func addNetns(t testing.TB, name string) {
	t.Helper()
	run(t, "ip", "netns", "add", name)
	t.Cleanup(func() { deleteNetns(t, name) })
	run(t, "ip", "-n", name, "link", "set", "lo", "up")
}

// addressUp gives interface ifc in namespace ns its address in
// 192.0.2.0/24 and brings it up.
func addressUp(t testing.TB, ns, ifc, addr string) {
	t.Helper()
	run(t, "ip", "-n", ns, "addr", "add", addr+"/24", "dev", ifc)
	run(t, "ip", "-n", ns, "link", "set", ifc, "up")
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
				killInNetns(pid, name)
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

// killInNetns kills pid through a pidfd, if the process the pidfd holds
// is still in namespace name: the PID may have been reused since ip
// listed it.
func killInNetns(pid int, name string) {
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return
	}
	defer unix.Close(fd)
	var ns, its unix.Stat_t
	if unix.Stat("/run/netns/"+name, &ns) != nil || unix.Stat("/proc/"+strconv.Itoa(pid)+"/ns/net", &its) != nil ||
		ns.Ino != its.Ino || ns.Dev != its.Dev {
		return
	}
	unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0)
}
