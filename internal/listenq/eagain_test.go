package listenq

import (
	"net"
	"os/exec"
	"syscall"
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
	// The children hold the files: each inherits the dups below. Go
	// gives children back the soft limit it found at start, which a
	// VM guest's init leaves at 1024, too low for the dups they carry;
	// setting the limit here keeps it for them.
	var lim unix.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, (*syscall.Rlimit)(&lim)); err != nil {
		t.Fatal(err)
	}
	lim.Cur = lim.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, (*syscall.Rlimit)(&lim)); err != nil {
		t.Fatal(err)
	}
	// Each child started keeps a pidfd here too: the dups leave room
	// for up to a thousand of them. A smaller hard limit would take more
	// children than a VM guest's memory has room for.
	perKid := int(lim.Max) - 1100
	if perKid < filesNeeded/1000 {
		t.Skipf("needs over 1000 processes holding %d files each (RLIMIT_NOFILE hard limit %d here)", perKid, lim.Max)
	}
	s := openScanner(t)
	s.filter = false // the 5.15-6.0 path: one walk over the host
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if _, err := s.Scan([]int{unix.Getpid()}, false); err != nil {
		t.Fatalf("host walk before the files: %v", err)
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
	for len(dups) < perKid {
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
	for total := 0; total < filesNeeded; total += len(dups) {
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
	t.Logf("%d children holding %d fds each", len(kids), perKid)
	if _, err := s.Scan([]int{unix.Getpid()}, false); err != nil {
		t.Errorf("host walk with 2M files after the target's: %v", err)
	}
}

// filesNeeded passes the kernel's limit of a million objects visited in
// one read with no record, twice over.
const filesNeeded = 2_100_000
