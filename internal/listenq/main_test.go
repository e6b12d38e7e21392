package listenq

import (
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

func TestMain(m *testing.M) {
	// Where the kernel charges BPF memory to RLIMIT_MEMLOCK (before
	// 5.11: the 5.10 VM lane), stallmon has lifted it in the tracker's
	// attach before it opens the scanner (pipeline's newAgent): the tests
	// do the same. Where that is refused (no CAP_SYS_RESOURCE, as on the
	// CI host, whose 6.18 charges BPF memory to the memory cgroup
	// instead), the tests load under the limit as it is.
	_ = unix.Setrlimit(unix.RLIMIT_MEMLOCK, &unix.Rlimit{Cur: unix.RLIM_INFINITY, Max: unix.RLIM_INFINITY})
	os.Exit(m.Run())
}
