package listenq

import (
	"net"
	"os/exec"
	"testing"

	"golang.org/x/sys/unix"
)

// bpf_seq_read returns EAGAIN when one read(2) visits MAX_ITER_OBJECTS
// (1,000,000) objects without writing a record, and expects the reader to
// read again (the position is kept); taken for an error, the scan fails. Without the
// pid filter (Linux 5.15 to 6.0, which docs/kernels.md supports) the walk
// covers every open file of the host: two million files held by processes
// after the target are enough (a busy host; here 110 children holding
// 19,900 fds each). Every scan then fails and so does every poll: the
// heartbeat stops for good, nothing is killed (a false failover). With the
// filter the same happens to a target holding a million fds before its
// listener.
func TestHostWalkReadsOnAfterEAGAIN(t *testing.T) {
	s := openScanner(t)
	s.filter = false // the 5.15-6.0 path: one walk over the host
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if _, err := s.Scan([]int{unix.Getpid()}); err != nil {
		t.Fatalf("host walk before the files: %v", err)
	}
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	fd, err := unix.Open("/dev/null", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	var dups []int
	defer func() {
		for _, d := range dups {
			unix.Close(d)
		}
	}()
	for len(dups) < int(lim.Cur)-400 {
		d, err := unix.Dup(fd) // inherited by the children below
		if err != nil {
			t.Fatalf("dup %d: %v", len(dups), err)
		}
		dups = append(dups, d)
	}
	var kids []*exec.Cmd
	defer func() {
		for _, k := range kids {
			k.Process.Kill()
			k.Wait()
		}
	}()
	for total := 0; total < 2_100_000; total += len(dups) {
		k := exec.Command("sleep", "60")
		if err := k.Start(); err != nil {
			t.Fatal(err)
		}
		kids = append(kids, k)
	}
	for _, d := range dups {
		unix.Close(d)
	}
	dups = nil
	t.Logf("%d children holding %d fds each", len(kids), int(lim.Cur)-400)
	if _, err := s.Scan([]int{unix.Getpid()}); err != nil {
		t.Errorf("host walk with 2M files after the target's: %v", err)
	}
}
