package guest

import (
	"fmt"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/stallmon/stallmon/vmtests/faultmod"
)

// childEnv selects what a re-executed copy of this test binary does
// instead of running the tests.
const childEnv = "FAULTMOD_CHILD"

// The child makes its ioctl from the main goroutine; locking it to the
// main thread makes /proc/PID/stat (the thread group leader's) describe
// the thread that is stuck.
func init() { runtime.LockOSThread() }

func TestMain(m *testing.M) {
	if what := os.Getenv(childEnv); what != "" {
		os.Exit(runChild(what))
	}
	os.Exit(m.Run())
}

func runChild(what string) int {
	d, err := faultmod.Open()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	// The parent waits for this line: the child is about to enter the ioctl.
	fmt.Printf("fd=%d\n", d.Fd())
	start := time.Now()
	switch what {
	case "sleep-d":
		err = d.SleepD()
	case "spin":
		err = d.Spin(spinSeconds)
	default:
		err = fmt.Errorf("unknown %s=%q", childEnv, what)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Printf("took=%d\n", time.Since(start))
	return 0
}

func requireVM(t *testing.T) {
	t.Helper()
	if os.Getenv(InVMEnv) != "1" {
		t.Skipf("runs only inside a vmtests VM (%s=1, set by its /init; see make vmtest)", InVMEnv)
	}
}
