package bench

import (
	"context"
	"io"
	"net"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/stallmon/stallmon/internal/egress"
	"github.com/stallmon/stallmon/internal/testutil/ctarget"
	"github.com/stallmon/stallmon/internal/workload"
)

// Keys of the sendto rows: --gate-egress's cost per datagram.
const (
	KeySendtoNone      = "sendto/none"
	KeySendtoGateOpen  = "sendto/gate-open"
	KeySendtoGateShut  = "sendto/gate-shut"
	KeySendtoGateOther = "sendto/gate-other"
)

// runSendto times 64-byte datagrams to one destination on loopback, with
// no gate, with the gate open on the sender (--pid: attached at the
// cgroup root, the sender's socket known by its cookie), shut on it, and
// with the gate shut on another process (the sender's packets pass its program
// unowned), interleaved by round.
func runSendto(t *testing.T, cfg config, tab *Table) {
	// A receiver that never reads: what it does not take is dropped at
	// its buffer alike in every case.
	rx, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer rx.Close()
	to := rx.LocalAddr().(*net.UDPAddr)
	loop := startProtocolArgs(t, ctarget.Build(t, "sendtoloop"), to.IP.String(), strconv.Itoa(to.Port))
	other := startProtocol(t, ctarget.Build(t, "idlethreads"))
	dest, err := egress.ParseDest("udp:" + to.String())
	if err != nil {
		t.Fatal(err)
	}
	pins := benchBPFFS(t)
	gate := func(pid int, open bool) func() (io.Closer, error) {
		return func() (io.Closer, error) {
			g, err := egress.Open(egress.Options{Dests: []egress.Dest{dest}, NodeID: "bench", PinDir: pins, ReleaseOnExit: true},
				egress.Scope{PID: pid})
			if err != nil {
				return nil, err
			}
			g.AllowRelease()
			if open {
				g.Vouch(time.Now().Add(time.Hour))
			}
			return g, nil
		}
	}
	calls := cfg.calls / 10
	none := tab.Add(&Row{Key: KeySendtoNone, Bench: "sendto 64 B", Case: "no gate", Unit: NsPerCall})
	row := func(key, label string) *Row {
		return tab.Add(&Row{Key: key, Bench: "sendto 64 B", Case: label, Unit: NsPerCall, Base: none})
	}
	cases := []syscallCase{
		{row: none, calls: calls},
		{row: row(KeySendtoGateOpen, "--gate-egress on this process, open (packets pass)"), calls: calls, attach: gate(loop.PID, true)},
		{row: row(KeySendtoGateShut, "--gate-egress on this process, shut (packets dropped, sendto succeeds)"), calls: calls, attach: gate(loop.PID, false)},
		{row: row(KeySendtoGateOther, "--gate-egress on another process, shut (this one's packets are parsed, matched and pass)"), calls: calls, attach: gate(other.PID, false)},
	}
	for round := range cfg.rounds {
		for _, c := range cases {
			ns, err := timeGetppid(loop, c)
			if err != nil {
				t.Fatalf("round %d, %s: %v", round+1, c.row.Case, err)
			}
			c.row.Samples = append(c.row.Samples, ns)
		}
		t.Logf("sendto round %d of %d done", round+1, cfg.rounds)
	}
}

// startProtocolArgs is startProtocol for a program that takes arguments.
func startProtocolArgs(t testing.TB, path string, args ...string) *workload.Proc {
	t.Helper()
	p, err := workload.Start(context.Background(), path, args, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Stop() })
	return p
}

// benchBPFFS mounts a BPF file system for the gate's pin, unmounted when
// the test ends.
func benchBPFFS(t *testing.T) string {
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
