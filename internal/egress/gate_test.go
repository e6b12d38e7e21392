package egress

import (
	"bytes"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"

	"github.com/stallmon/stallmon/internal/cgroup"
	"github.com/stallmon/stallmon/internal/testutil/cgrouptest"
	"github.com/stallmon/stallmon/internal/testutil/hbtest"
	"github.com/stallmon/stallmon/internal/testutil/nettest"
	"github.com/stallmon/stallmon/internal/testutil/privtest"
)

const hbInterval = hbtest.Interval

// bpffs mounts a BPF file system of the test's own, unmounted at its end,
// so that the test's pins never mix with a real stallmon's.
func bpffs(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := unix.Mount("bpf", dir, "bpf", 0, ""); err != nil {
		t.Fatalf("mounting a bpffs: %v", err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil {
			t.Errorf("unmounting %s: %v", dir, err)
		}
	})
	return filepath.Join(dir, "egress")
}

func startService(t *testing.T, group *net.UDPAddr, node string, cg *cgroup.Dir) *hbtest.Service {
	t.Helper()
	path := ""
	if cg != nil {
		path = cg.Path
	}
	return hbtest.StartService(t, group, node, path)
}

func dest(t *testing.T, group *net.UDPAddr) Dest {
	t.Helper()
	d, err := ParseDest(fmt.Sprintf("udp:%s:%d", group.IP, group.Port))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// checkGate drives a gate on the service "svc" beside "other", which
// sends to the same group from outside the scope: closed at start,
// open while vouched for, closed again once the deadline passes or on
// Shut; other is heard all along.
func checkGate(t *testing.T, g *Gate, peer *hbtest.Peer) {
	t.Helper()
	start := time.Now()
	if !peer.WaitHeard("other", start, 2*time.Second) {
		t.Fatal("the sender outside the gate's scope is not heard")
	}
	if _, ok := peer.WaitSilent("svc", 3*hbInterval, 2*time.Second); !ok && peer.HeardSince("svc", start.Add(hbInterval)) {
		t.Fatalf("the service is heard through a gate never vouched for: %d packets", len(peer.Heard("svc")))
	}
	if st, err := g.Stats(); err != nil || st.Open {
		t.Fatalf("stats of a gate never vouched for: %+v %v", st, err)
	}

	// Vouched for: the service is heard.
	vouched := time.Now()
	g.Vouch(vouched.Add(time.Hour))
	if !peer.WaitHeard("svc", vouched, 2*time.Second) {
		t.Fatal("the service is not heard through an open gate")
	}
	if st, err := g.Stats(); err != nil || !st.Open {
		t.Fatalf("stats of an open gate: %+v %v", st, err)
	}
	before, err := g.Stats()
	if err != nil {
		t.Fatal(err)
	}

	// The dead-man's switch: a deadline nobody extends closes the gate
	// in the kernel, with nothing done in userspace.
	deadline := time.Now().Add(300 * time.Millisecond)
	g.Vouch(deadline)
	last, ok := peer.WaitSilent("svc", 3*hbInterval, 3*time.Second)
	if !ok {
		t.Fatal("the service is still heard after the deadline passed")
	}
	if late := last.Sub(deadline); late > hbInterval/2 {
		t.Errorf("last heartbeat %v after the deadline", late)
	}
	t.Logf("deadline -> last heartbeat heard: %v", last.Sub(deadline))
	after, err := g.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if after.Open || after.Dropped[0].Packets <= before.Dropped[0].Packets {
		t.Errorf("stats after the deadline: %+v (before %+v)", after, before)
	}

	// Open again, then Shut: closed at once.
	heardBefore := len(peer.Seqs("svc"))
	reopened := time.Now()
	g.Vouch(reopened.Add(time.Hour))
	if !peer.WaitHeard("svc", reopened, 2*time.Second) {
		t.Fatal("the service is not heard once vouched for again")
	}
	// Every datagram held is counted once, the multicast ones too.
	seqs := peer.Seqs("svc")
	held := seqs[heardBefore] - seqs[heardBefore-1] - 1
	if st, err := g.Stats(); err != nil || st.Dropped[0].Packets-before.Dropped[0].Packets != held {
		t.Errorf("stats %+v %v: counted %d held, the peer missed %d", st, err, st.Dropped[0].Packets-before.Dropped[0].Packets, held)
	}
	g.Shut("stalled")
	shut := time.Now()
	if _, ok := peer.WaitSilent("svc", 3*hbInterval, 3*time.Second); !ok {
		t.Fatal("the service is still heard after Shut")
	}
	if peer.HeardSince("svc", shut.Add(10*time.Millisecond)) {
		t.Errorf("heard %v after Shut", peer.Last("svc").Sub(shut))
	}
	if !peer.WaitHeard("other", shut.Add(3*hbInterval), 2*time.Second) {
		t.Fatal("the sender outside the scope went silent with the service")
	}
	t.Logf("other: %d packets heard, seqs %d..%d", len(peer.Seqs("other")), peer.Seqs("other")[0], peer.Seqs("other")[len(peer.Seqs("other"))-1])
	assertNoGap(t, peer.Seqs("other"))
}

// assertNoGap fails t when a sequence skips a number: a packet dropped.
func assertNoGap(t *testing.T, seqs []uint64) {
	t.Helper()
	for i := 1; i < len(seqs); i++ {
		if seqs[i] != seqs[i-1]+1 {
			t.Errorf("sequence skips from %d to %d: packets lost", seqs[i-1], seqs[i])
			return
		}
	}
}

func TestGateOnCgroup(t *testing.T) {
	privtest.Require(t)
	group := nettest.LoopbackGroup(t)
	peer := hbtest.Listen(t, group)
	cg := cgrouptest.New(t)
	startService(t, group, "svc", &cg)
	startService(t, group, "other", nil)
	g, err := Open(Options{Dests: []Dest{dest(t, group)}, NodeID: "host/svc", PinDir: bpffs(t), ReleaseOnExit: true}, Scope{Cgroup: cg.Path})
	if err != nil {
		t.Fatal(err)
	}
	g.AllowRelease()
	defer g.Close()
	checkGate(t, g, peer)
}

// TestGateOnPID gates one process above its cgroup, which the other
// sender shares: only the sockets found in the service's file table are
// gated.
func TestGateOnPID(t *testing.T) {
	privtest.Require(t)
	group := nettest.LoopbackGroup(t)
	peer := hbtest.Listen(t, group)
	cg := cgrouptest.New(t)
	svc := startService(t, group, "svc", &cg)
	startService(t, group, "other", &cg)
	g, err := Open(Options{Dests: []Dest{dest(t, group)}, NodeID: "host/svc", PinDir: bpffs(t), ReleaseOnExit: true}, Scope{PID: svc.PID})
	if err != nil {
		t.Fatal(err)
	}
	g.AllowRelease()
	defer g.Close()
	checkGate(t, g, peer)
}

// TestPinnedGateOutlivesItsStallmon: a gate closed without release stays
// in the kernel and closed, the next gate for the same node takes it over
// (one link, the pin kept), and Release removes it: the service is heard
// again with nothing vouching for it.
func TestPinnedGateOutlivesItsStallmon(t *testing.T) {
	privtest.Require(t)
	group := nettest.LoopbackGroup(t)
	peer := hbtest.Listen(t, group)
	cg := cgrouptest.New(t)
	startService(t, group, "svc", &cg)
	pins := bpffs(t)
	opts := Options{Dests: []Dest{dest(t, group)}, NodeID: "host/svc", PinDir: pins}
	t.Cleanup(func() { Release(pins, "host/svc") })
	g, err := Open(opts, Scope{Cgroup: cg.Path})
	if err != nil {
		t.Fatal(err)
	}
	vouched := time.Now()
	g.Vouch(vouched.Add(200 * time.Millisecond))
	if !peer.WaitHeard("svc", vouched, 2*time.Second) {
		t.Fatal("the service is not heard through an open gate")
	}
	// Gone, as a killed stallmon is: its deadline runs out in the kernel.
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
	pin := filepath.Join(pins, "host%2Fsvc", "link")
	if _, err := os.Stat(pin); err != nil {
		t.Fatalf("the gate is not pinned after Close: %v", err)
	}
	if _, ok := peer.WaitSilent("svc", 3*hbInterval, 3*time.Second); !ok {
		t.Fatal("the service is heard with no stallmon vouching for it")
	}

	g2, err := Open(opts, Scope{Cgroup: cg.Path})
	if err != nil {
		t.Fatal(err)
	}
	quiet := time.Now()
	if peer.WaitHeard("svc", quiet, 3*hbInterval) {
		t.Fatal("the service is heard through a taken-over gate before any Vouch")
	}
	if n := cgroupLinks(t, cg.Path); n != 1 {
		t.Errorf("%d egress programs on the cgroup after the takeover, want 1", n)
	}
	g2.Vouch(time.Now().Add(time.Hour))
	if !peer.WaitHeard("svc", quiet, 2*time.Second) {
		t.Fatal("the service is not heard through the taken-over gate")
	}
	g2.Shut("leaving")
	if err := g2.Close(); err != nil {
		t.Fatal(err)
	}
	if _, ok := peer.WaitSilent("svc", 3*hbInterval, 3*time.Second); !ok {
		t.Fatal("the service is heard after Shut")
	}

	if err := Release(pins, "host/svc"); err != nil {
		t.Fatal(err)
	}
	released := time.Now()
	if !peer.WaitHeard("svc", released, 2*time.Second) {
		t.Fatal("the service is not heard once its gate is released")
	}
	if _, err := os.Stat(filepath.Dir(pin)); !os.IsNotExist(err) {
		t.Errorf("the pin's directory is left: %v", err)
	}
	if n := cgroupLinks(t, cg.Path); n != 0 {
		t.Errorf("%d egress programs on the cgroup after Release, want 0", n)
	}
	if err := Release(pins, "host/svc"); err == nil {
		t.Error("a second Release found a gate")
	}
}

// cgroupLinks counts the egress programs attached to the cgroup at path.
func cgroupLinks(t *testing.T, path string) int {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := link.QueryPrograms(link.QueryOptions{Target: int(f.Fd()), Attach: ebpf.AttachCGroupInetEgress})
	if err != nil {
		t.Fatal(err)
	}
	return len(r.Programs)
}

// TestGateDropIsSilent: a held datagram is a send that succeeds, as a
// packet lost on the wire would be: the service sees no error it could
// act on or log in a loop.
func TestGateDropIsSilent(t *testing.T) {
	privtest.Require(t)
	rx, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer rx.Close()
	to := rx.LocalAddr().(*net.UDPAddr)
	tx, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Close()
	d, err := ParseDest("udp:" + to.String())
	if err != nil {
		t.Fatal(err)
	}
	// This process is the service: its socket is found in its fd table.
	g, err := Open(Options{Dests: []Dest{d}, NodeID: "self", PinDir: bpffs(t), ReleaseOnExit: true}, Scope{PID: os.Getpid()})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if _, err := tx.WriteTo([]byte("held"), to); err != nil {
		t.Fatalf("a held datagram failed the send: %v", err)
	}
	if got := receive(t, rx, 3*hbInterval); got != "" {
		t.Fatalf("received %q through a closed gate", got)
	}
	g.Vouch(time.Now().Add(time.Hour))
	if _, err := tx.WriteTo([]byte("passed"), to); err != nil {
		t.Fatal(err)
	}
	if got := receive(t, rx, 2*time.Second); got != "passed" {
		t.Fatalf("received %q through an open gate, want passed", got)
	}
	st, err := g.Stats()
	if err != nil || st.Dropped[0].Packets != 1 {
		t.Errorf("stats %+v %v, want one packet dropped", st, err)
	}
}

// TestGateHoldsATCPHeartbeat: a heartbeat over a connection stops
// reaching the peer while the gate is shut (the segments are held, and
// the kernel retransmits them), and flows again once it opens.
func TestGateHoldsATCPHeartbeat(t *testing.T) {
	privtest.Require(t)
	ln, err := net.ListenTCP("tcp4", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	conn, err := net.DialTCP("tcp4", nil, ln.Addr().(*net.TCPAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	peer, err := ln.AcceptTCP()
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	d, err := ParseDest("tcp:" + ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	g, err := Open(Options{Dests: []Dest{d}, NodeID: "self", PinDir: bpffs(t), ReleaseOnExit: true}, Scope{PID: os.Getpid()})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	g.Vouch(time.Now().Add(time.Hour))
	if _, err := conn.Write([]byte("a")); err != nil {
		t.Fatal(err)
	}
	if got := receiveTCP(t, peer, 2*time.Second); got != "a" {
		t.Fatalf("received %q through an open gate, want a", got)
	}
	g.Shut("stalled")
	if _, err := conn.Write([]byte("b")); err != nil {
		t.Fatalf("a held segment failed the write: %v", err)
	}
	if got := receiveTCP(t, peer, 500*time.Millisecond); got != "" {
		t.Fatalf("received %q through a shut gate", got)
	}
	g.Vouch(time.Now().Add(time.Hour))
	// The held segment comes with the kernel's next retransmission.
	if got := receiveTCP(t, peer, 5*time.Second); got != "b" {
		t.Fatalf("received %q once the gate opened, want b", got)
	}
}

func receive(t *testing.T, c *net.UDPConn, within time.Duration) string {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(within))
	b := make([]byte, 64)
	n, _, err := c.ReadFrom(b)
	if err != nil {
		return ""
	}
	return string(b[:n])
}

func receiveTCP(t *testing.T, c *net.TCPConn, within time.Duration) string {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(within))
	b := make([]byte, 64)
	n, err := c.Read(b)
	if err != nil {
		return ""
	}
	return string(b[:n])
}

// A gate taken over goes on with its predecessor's deadline: open if the
// old stallmon left it open (a clean stop on a healthy service), so that
// a restart does not silence the service until the first poll, and
// lapsing when the old deadline would have.
func TestTakeoverCarriesDeadline(t *testing.T) {
	privtest.Require(t)
	group := nettest.LoopbackGroup(t)
	cg := cgrouptest.New(t)
	pins := bpffs(t)
	opts := Options{Dests: []Dest{dest(t, group)}, NodeID: "host/carry", PinDir: pins}
	t.Cleanup(func() { Release(pins, "host/carry") })
	g, err := Open(opts, Scope{Cgroup: cg.Path})
	if err != nil {
		t.Fatal(err)
	}
	g.Vouch(time.Now().Add(time.Hour))
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
	g2, err := Open(opts, Scope{Cgroup: cg.Path})
	if err != nil {
		t.Fatal(err)
	}
	defer g2.Close()
	st, err := g2.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if !st.Open {
		t.Fatal("the taken-over gate is shut before any Vouch, its predecessor's deadline an hour away")
	}
	g2.Shut("leaving")
	if st, err := g2.Stats(); err != nil || st.Open {
		t.Fatalf("open after Shut: %+v, %v", st, err)
	}
}

// --gate-egress-release-on-exit releases the gate only when the stop
// allowed it (ended on LEAVING, or the service gone): otherwise Close
// keeps it pinned, and says so.
func TestReleaseOnExitOnlyWhenAllowed(t *testing.T) {
	privtest.Require(t)
	group := nettest.LoopbackGroup(t)
	cg := cgrouptest.New(t)
	pins := bpffs(t)
	var logged bytes.Buffer
	opts := Options{Dests: []Dest{dest(t, group)}, NodeID: "host/rel", PinDir: pins, ReleaseOnExit: true,
		Logger: slog.New(slog.NewJSONHandler(&logged, nil))}
	t.Cleanup(func() { Release(pins, "host/rel") })
	pin := filepath.Join(pins, "host%2Frel", "link")
	g, err := Open(opts, Scope{Cgroup: cg.Path})
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(pin); err != nil {
		t.Fatalf("released at a stop that did not allow it: %v", err)
	}
	if !strings.Contains(logged.String(), `"msg":"egress_kept"`) {
		t.Errorf("no egress_kept logged: %s", logged.String())
	}
	g, err = Open(opts, Scope{Cgroup: cg.Path})
	if err != nil {
		t.Fatal(err)
	}
	g.AllowRelease()
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(pin); !os.IsNotExist(err) {
		t.Fatalf("still pinned after a release allowed: %v", err)
	}
	if n := cgroupLinks(t, cg.Path); n != 0 {
		t.Errorf("%d egress programs on the cgroup after the release, want 0", n)
	}
}

// A --pid gate holds a socket the service created after the last scan of
// its file table: here the target is the test process itself, sending
// each datagram on a socket of its own (socket, send, close), as a
// heartbeat written that way does, none of them ever seen by a scan.
func TestGateHoldsSocketPerSend(t *testing.T) {
	privtest.Require(t)
	rx, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer rx.Close()
	to := rx.LocalAddr().(*net.UDPAddr)
	d, err := ParseDest(fmt.Sprintf("udp:%s", to))
	if err != nil {
		t.Fatal(err)
	}
	pins := bpffs(t)
	t.Cleanup(func() { Release(pins, "host/each") })
	// No rescan within the test: only the socket hook can find them.
	g, err := Open(Options{Dests: []Dest{d}, NodeID: "host/each", PinDir: pins, Rescan: time.Hour}, Scope{PID: os.Getpid()})
	if err != nil {
		t.Fatal(err)
	}
	g.AllowRelease()
	defer g.Close()
	send := func(msg string) {
		t.Helper()
		c, err := net.DialUDP("udp4", nil, to)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := c.Write([]byte(msg)); err != nil {
			t.Fatal(err)
		}
	}
	before := ownedCount(t, g)
	const n = 30
	for i := range n {
		send(fmt.Sprintf("held %d", i))
	}
	// Released, each socket left the set: sockets made one per send
	// must not fill it.
	if after := ownedCount(t, g); after > before {
		t.Errorf("%d sockets in the owned set after %d made and closed, %d before", after, n, before)
	}
	// Opened, a marker gets through: loopback delivers in order, so
	// whatever was not held arrived before it.
	g.Vouch(time.Now().Add(time.Hour))
	send("marker")
	passed := 0
	buf := make([]byte, 64)
	for {
		rx.SetReadDeadline(time.Now().Add(5 * time.Second))
		m, _, err := rx.ReadFromUDP(buf)
		if err != nil {
			t.Fatalf("the marker sent through the open gate never arrived: %v", err)
		}
		if string(buf[:m]) == "marker" {
			break
		}
		passed++
	}
	if passed > 0 {
		t.Errorf("%d of %d datagrams, each on a socket made after the scan, passed a shut gate", passed, n)
	}
}

func ownedCount(t *testing.T, g *Gate) int {
	t.Helper()
	var k uint64
	var v uint8
	n := 0
	it := g.objs.Owned.Iterate()
	for it.Next(&k, &v) {
		n++
	}
	if err := it.Err(); err != nil {
		t.Fatal(err)
	}
	return n
}

// A --pid target with more sockets than the old 4096-entry set (4200 UDP
// sockets, and 200 unix sockets the gate never judges) is gated whole:
// Open succeeds, the unix sockets take no room, and the last socket
// found is held.
func TestGateOnManySockets(t *testing.T) {
	privtest.Require(t)
	rx, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer rx.Close()
	to := rx.LocalAddr().(*net.UDPAddr)
	const n, pairs = 4200, 100
	var fds []int
	t.Cleanup(func() {
		for _, fd := range fds {
			unix.Close(fd)
		}
	})
	for range n {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatalf("socket %d: %v", len(fds), err)
		}
		fds = append(fds, fd)
	}
	last := fds[len(fds)-1]
	if err := unix.Connect(last, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}, Port: to.Port}); err != nil {
		t.Fatal(err)
	}
	for range pairs {
		p, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		fds = append(fds, p[0], p[1])
	}
	d, err := ParseDest(fmt.Sprintf("udp:%s", to))
	if err != nil {
		t.Fatal(err)
	}
	pins := bpffs(t)
	t.Cleanup(func() { Release(pins, "host/many") })
	g, err := Open(Options{Dests: []Dest{d}, NodeID: "host/many", PinDir: pins, Rescan: time.Hour}, Scope{PID: os.Getpid()})
	if err != nil {
		t.Fatalf("a target with %d sockets: %v", n, err)
	}
	g.AllowRelease()
	defer g.Close()
	// The test process's own few other inet sockets (rx, the runtime's)
	// besides: well under the 2*pairs unix sockets, were they entered.
	if c := ownedCount(t, g); c < n || c >= n+pairs {
		t.Errorf("%d sockets in the owned set, want %d and the few others (no unix socket)", c, n)
	}
	if _, err := unix.Write(last, []byte("held")); err != nil {
		t.Fatal(err)
	}
	g.Vouch(time.Now().Add(time.Hour))
	if _, err := unix.Write(last, []byte("marker")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 16)
	rx.SetReadDeadline(time.Now().Add(5 * time.Second))
	m, _, err := rx.ReadFromUDP(buf)
	if err != nil {
		t.Fatalf("the marker never arrived: %v", err)
	}
	if got := string(buf[:m]); got != "marker" {
		t.Errorf("received %q first: the last of %d sockets passed the shut gate", got, n)
	}
}

// A datagram larger than the link's MTU is judged once, whole, before
// the IP layer fragments it: through a shut gate nothing of it arrives
// and it counts once; through an open one it arrives reassembled. (The
// gate once entered a port-0 twin of each IPv4 UDP destination for
// later fragments, on the belief that the hook saw them: it does not.)
func TestGateHoldsFragmentedDatagramWhole(t *testing.T) {
	privtest.Require(t)
	p := nettest.VethPair(t)
	var rx *net.UDPConn
	if err := nettest.InNetns(p.B, func() (err error) {
		rx, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.ParseIP(p.AddrB)})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer rx.Close()
	to := rx.LocalAddr().(*net.UDPAddr)
	var tx *net.UDPConn
	if err := nettest.InNetns(p.A, func() (err error) {
		tx, err = net.DialUDP("udp4", nil, to)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer tx.Close()
	d, err := ParseDest(fmt.Sprintf("udp:%s", to))
	if err != nil {
		t.Fatal(err)
	}
	pins := bpffs(t)
	t.Cleanup(func() { Release(pins, "host/frag") })
	g, err := Open(Options{Dests: []Dest{d}, NodeID: "host/frag", PinDir: pins, Rescan: time.Hour}, Scope{PID: os.Getpid()})
	if err != nil {
		t.Fatal(err)
	}
	g.AllowRelease()
	defer g.Close()
	big := make([]byte, 4000) // three fragments on a 1500-byte link
	copy(big, "held")
	if _, err := tx.Write(big); err != nil {
		t.Fatal(err)
	}
	st, err := g.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if n := st.Dropped[0].Packets; n != 1 {
		t.Errorf("a fragmented datagram held counts %d, want 1 (judged before fragmentation)", n)
	}
	g.Vouch(time.Now().Add(time.Hour))
	copy(big, "open")
	if _, err := tx.Write(big); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 8192)
	rx.SetReadDeadline(time.Now().Add(5 * time.Second))
	m, _, err := rx.ReadFromUDP(buf)
	if err != nil {
		t.Fatalf("the datagram sent through the open gate never arrived: %v", err)
	}
	if got := string(buf[:4]); got != "open" || m != len(big) {
		t.Errorf("received %q (%d bytes) first, want the open gate's %d bytes: part of the held one passed", got, m, len(big))
	}
}
