package nettest

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// LAN is network namespaces on one Ethernet segment: each has a veth
// whose other end is a port of a bridge in a namespace of its own, as
// hosts plugged into a switch. Multicast reaches every port (snooping is
// off, so no port depends on an IGMP report having been seen).
type LAN struct {
	Switch string // the bridge's namespace
	Nodes  []Node
}

// Node is one namespace of a LAN.
type Node struct {
	NS, If, Addr string // namespace, its interface on the LAN, its address
}

// NewLAN creates n namespaces on a bridge, addressed 192.0.2.1, .2, ...,
// all removed (with anything still running inside) when the test ends.
func NewLAN(t testing.TB, n int) *LAN {
	t.Helper()
	if n < 1 || n > 9 {
		t.Fatalf("nettest: a LAN of %d nodes, want 1..9", n)
	}
	id := fmt.Sprintf("%d-%d", os.Getpid()%100000, pairs.Add(1))
	l := &LAN{Switch: "sms-" + id}
	addNetns(t, l.Switch)
	run(t, "ip", "-n", l.Switch, "link", "add", "br0", "type", "bridge", "mcast_snooping", "0")
	run(t, "ip", "-n", l.Switch, "link", "set", "br0", "up")
	for i := range n {
		suffix := strconv.Itoa(i+1) + "-" + id
		node := Node{NS: "smn" + suffix, If: ifName("sv" + suffix), Addr: "192.0.2." + strconv.Itoa(i+1)}
		port := ifName("sp" + suffix)
		addNetns(t, node.NS)
		run(t, "ip", "link", "add", node.If, "netns", node.NS, "type", "veth", "peer", "name", port, "netns", l.Switch)
		run(t, "ip", "-n", l.Switch, "link", "set", port, "master", "br0", "up")
		addressUp(t, node.NS, node.If, node.Addr)
		l.Nodes = append(l.Nodes, node)
	}
	l.waitForwarding(t)
	return l
}

// waitForwarding waits until every port of the bridge forwards. A port
// whose veth peer came up after it is enabled only when the kernel's
// link watch sees the carrier, up to a second later on a loaded machine;
// until then the bridge drops what reaches it.
func (l *LAN) waitForwarding(t testing.TB) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		out, err := exec.Command("ip", "-n", l.Switch, "-d", "-o", "link", "show", "master", "br0").Output()
		if err != nil {
			t.Fatalf("listing the bridge's ports: %v", err)
		}
		if n := strings.Count(string(out), "bridge_slave state forwarding "); n == len(l.Nodes) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("bridge ports not all forwarding after 10s:\n%s", out)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// InNetns runs fn on an OS thread that joined namespace ns. Sockets fn
// opens belong to ns and may be used from anywhere afterwards. The thread
// goes back to its own namespace before Go may schedule anything else on
// it; if it cannot, it stays locked and ends with fn's goroutine.
func InNetns(ns string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		own, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			errc <- fmt.Errorf("opening this thread's namespace: %w", err)
			return
		}
		defer own.Close()
		f, err := os.Open("/run/netns/" + ns)
		if err != nil {
			errc <- fmt.Errorf("opening namespace %s: %w", ns, err)
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("joining namespace %s: %w", ns, err)
			return
		}
		err = fn()
		if unix.Setns(int(own.Fd()), unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		}
		errc <- err
	}()
	return <-errc
}

// HTTPClient returns a client whose connections are made from inside
// namespace ns, to reach a server that listens on ns's own loopback.
func HTTPClient(ns string) *http.Client {
	return &http.Client{Transport: &http.Transport{
		DisableKeepAlives: true,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			var c net.Conn
			err := InNetns(ns, func() error {
				var err error
				c, err = (&net.Dialer{}).DialContext(ctx, network, addr)
				return err
			})
			return c, err
		},
	}}
}

// ifName cuts a name to the kernel's 15 bytes.
func ifName(s string) string { return s[:min(15, len(s))] }
