package bench

import (
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/stallmon/stallmon/internal/listenq"
)

// runListenerScan measures one listener scan of the work_waiting rule
// (listenq.Scanner.Scan: the task_file iterator's walk of one process's
// file table and the decoding) of a process, this one, holding
// cfg.listenerCases sockets: half of them listening TCP sockets, the
// other half a client connection waiting in each one's queue (two fds a
// listener keeps 10,000 sockets under this machine's 20,000-fd limit).
// Every scan must find every listener with its connection queued.
func runListenerScan(t *testing.T, cfg config, tab *Table) {
	s, err := listenq.Open()
	if err != nil {
		t.Fatalf("%+v", err)
	}
	defer s.Close()
	walk := "one process's files (pid filter)"
	if !s.PidFiltered() {
		walk = "every task's files (no pid filter before Linux 6.1)"
	}
	var base *Row
	for _, n := range cfg.listenerCases {
		row := tab.Add(&Row{Key: ListenerScanKey(n), Bench: "time per listener scan (work_waiting)", Unit: Micros, Base: base,
			Case: thousands(n) + " sockets (" + thousands(n/2) + " TCP listeners, a connection queued on each); walk of " + walk})
		if base == nil {
			base = row
		}
		measureListenerScans(t, cfg, s, n, row)
		t.Logf("listener scan, %d sockets: %s µs", n, Format(row.Figure()))
	}
	base = nil
	for _, n := range cfg.listenerCases {
		row := tab.Add(&Row{Key: ConnectedScanKey(n), Bench: "time per socket scan (work_waiting, by_socket: all)", Unit: Micros, Base: base,
			Case: thousands(n) + " sockets (" + thousands(n/2) + " TCP connections, both ends, one unread byte at the accepted end); walk of " + walk})
		if base == nil {
			base = row
		}
		measureConnectedScans(t, cfg, s, n, row)
		t.Logf("connected scan, %d sockets: %s µs", n, Format(row.Figure()))
	}
}

// measureConnectedScans times scans with connected sockets asked for, of
// n/2 loopback connections whose accepted ends each hold an unread byte.
// Every scan must find each of them.
func measureConnectedScans(t *testing.T, cfg config, s *listenq.Scanner, n int, row *Row) {
	ln, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	fds := []int{ln}
	defer func() {
		for _, fd := range fds {
			unix.Close(fd)
		}
	}()
	if err := unix.Bind(ln, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := unix.Listen(ln, 16); err != nil {
		t.Fatal(err)
	}
	sa, err := unix.Getsockname(ln)
	if err != nil {
		t.Fatal(err)
	}
	for i := range n / 2 {
		client, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatalf("connection %d of %d: %v", i+1, n/2, err)
		}
		fds = append(fds, client)
		if err := unix.Connect(client, sa); err != nil {
			t.Fatalf("connection %d of %d: %v", i+1, n/2, err)
		}
		srv, _, err := unix.Accept4(ln, unix.SOCK_CLOEXEC)
		if err != nil {
			t.Fatalf("connection %d of %d: %v", i+1, n/2, err)
		}
		fds = append(fds, srv)
		if _, err := unix.Write(client, []byte{1}); err != nil {
			t.Fatal(err)
		}
	}
	pids := []int{os.Getpid()}
	for r := range cfg.rounds {
		start := time.Now()
		for range cfg.snapshots {
			ls, err := s.Scan(pids, true)
			if err != nil {
				t.Fatal(err)
			}
			if got := queuedCount(ls); got < n/2 {
				t.Fatalf("round %d: the scan saw %d sockets with unread data, want %d", r+1, got, n/2)
			}
		}
		row.Samples = append(row.Samples, float64(time.Since(start).Microseconds())/float64(cfg.snapshots))
	}
}

func measureListenerScans(t *testing.T, cfg config, s *listenq.Scanner, n int, row *Row) {
	fds := make([]int, 0, n)
	defer func() {
		for _, fd := range fds {
			unix.Close(fd)
		}
	}()
	for range n / 2 {
		ln, client, err := queuedListener()
		if err != nil {
			t.Fatalf("listener %d of %d: %v", len(fds)/2+1, n/2, err)
		}
		fds = append(fds, ln, client)
	}
	pids := []int{os.Getpid()}
	for r := range cfg.rounds {
		start := time.Now()
		for range cfg.snapshots {
			ls, err := s.Scan(pids, false)
			if err != nil {
				t.Fatal(err)
			}
			if got := queuedCount(ls); got < n/2 {
				t.Fatalf("round %d: the scan saw %d listeners with a connection queued, want %d", r+1, got, n/2)
			}
		}
		row.Samples = append(row.Samples, float64(time.Since(start).Microseconds())/float64(cfg.snapshots))
	}
}

func queuedCount(ls []listenq.Listener) int {
	n := 0
	for _, l := range ls {
		if l.Queued > 0 {
			n++
		}
	}
	return n
}

// queuedListener opens a TCP listener on loopback and one connection
// that waits in its queue.
func queuedListener() (ln, client int, err error) {
	if ln, err = unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0); err != nil {
		return -1, -1, err
	}
	fail := func(e error) (int, int, error) {
		unix.Close(ln)
		if client > 0 {
			unix.Close(client)
		}
		return -1, -1, e
	}
	if err := unix.Bind(ln, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		return fail(err)
	}
	if err := unix.Listen(ln, 4); err != nil {
		return fail(err)
	}
	sa, err := unix.Getsockname(ln)
	if err != nil {
		return fail(err)
	}
	if client, err = unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0); err != nil {
		client = -1
		return fail(err)
	}
	if err := unix.Connect(client, sa); err != nil {
		return fail(err)
	}
	return ln, client, nil
}
