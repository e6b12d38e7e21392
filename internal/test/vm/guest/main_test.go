package guest

import (
	"bufio"
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/stallmon/stallmon/internal/test/vm/faultmod"
	"github.com/stallmon/stallmon/internal/workload"
)

// childEnv selects what a re-executed copy of this test binary does
// instead of running the tests.
const childEnv = "FAULTMOD_CHILD"

// The child makes its ioctl from the main goroutine; locking it to the
// main thread makes /proc/PID/stat (the thread group leader's) describe
// the thread that is stuck.
func init() { runtime.LockOSThread() }

func TestMain(m *testing.M) {
	// The targets without faultmod (hungread_test.go) are this binary
	// re-executed as internal/workload.
	workload.RunIfChild()
	if what := os.Getenv(childEnv); what != "" {
		os.Exit(runChild(what))
	}
	os.Exit(m.Run())
}

// runChild makes one faultmod call from the main thread. what is the
// ioctl, "poll" for a poll(2) on the device with no timeout (an event
// loop waiting), or "idle" for no call and no device at all (a target on
// a guest without faultmod); ":busy" appended starts a second thread
// that makes fast syscalls meanwhile: the heartbeat thread of the
// incident, which kept the process looking alive.
func runChild(what string) int {
	what, busy := strings.CutSuffix(what, ":busy")
	var (
		d   *faultmod.Device
		fd  = -1
		err error
	)
	if what != "idle" {
		if d, err = faultmod.Open(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
		fd = int(d.Fd())
	}
	if busy {
		started := make(chan struct{})
		go busyLoop(started)
		<-started
	}
	// The parent waits for this line, and sends one back when the ioctl
	// should start: it may first attach stallmon, which only sees a
	// running syscall that it saw begin.
	fmt.Printf("fd=%d\n", fd)
	stdin := bufio.NewReader(os.Stdin)
	if _, err := stdin.ReadString('\n'); err != nil {
		fmt.Fprintln(os.Stderr, "waiting for the parent:", err)
		return 2
	}
	start := time.Now()
	switch what {
	case "sleep-d":
		err = d.SleepD()
	case "sleep-killable":
		err = d.SleepKillable()
	case "spin":
		err = d.Spin(spinSeconds)
	case "spin-long":
		err = d.Spin(longSpinSeconds)
	case "oops":
		err = d.OopsMutex()
	case "lock":
		err = d.Lock()
	case "poll":
		_, err = d.Poll(-1)
	case "idle":
	default:
		err = fmt.Errorf("unknown %s=%q", childEnv, what)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Printf("took=%d\n", time.Since(start))
	// Live on until the parent closes stdin, so that a watcher can see
	// the syscall return before the process goes.
	stdin.ReadString('\n')
	return 0
}

func requireVM(t *testing.T) {
	t.Helper()
	if os.Getenv(InVMEnv) != "1" {
		t.Skipf("runs only inside a VM of internal/test/vm (%s=1, set by its /init; see make vmtest)", InVMEnv)
	}
}

// busyLoop makes bursts of getppid calls on a thread of its own for as
// long as the process lives, leaving the guest's CPUs some room.
func busyLoop(started chan<- struct{}) {
	runtime.LockOSThread()
	close(started)
	for {
		for range 100 {
			unix.Getppid()
		}
		time.Sleep(10 * time.Millisecond)
	}
}
