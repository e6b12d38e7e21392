package tracker

import (
	"errors"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/cilium/ebpf"
	"github.com/stallmon/stallmon/internal/testutil/privtest"
)

// The BTF answer agrees with the release on a mainline kernel (the host's
// 6.18, and 6.1 and 6.12 in the VMs): PF_USER_WORKER came in 6.4.
func TestUserWorkerFromBTF(t *testing.T) {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		t.Fatal(err)
	}
	rel := unix.ByteSliceToString(u.Release[:])
	f := strings.SplitN(rel, ".", 3)
	major, err1 := strconv.Atoi(f[0])
	minor, err2 := strconv.Atoi(strings.TrimRightFunc(f[1], func(r rune) bool { return r < '0' || r > '9' }))
	if err1 != nil || err2 != nil {
		t.Fatalf("release %q does not parse", rel)
	}
	want := major > 6 || (major == 6 && minor >= 4)
	if got := hasUserWorker(); got != want {
		t.Errorf("kernel %s: hasUserWorker() = %v, want %v", rel, got, want)
	}
}

// The memcg probe lowers the process's RLIMIT_MEMLOCK to 0 for a moment;
// a child forked then would keep 0 for good (a hook, the service under
// run). Children started all through a run of probes never see it.
func TestMemlockProbeLeaksNoZeroLimitToChildren(t *testing.T) {
	privtest.Require(t)
	var stop atomic.Bool
	var wg sync.WaitGroup
	wg.Go(func() {
		for !stop.Load() {
			// Absent accounting (5.10) is a verdict too: the limit was
			// lowered all the same.
			if err := probeMemcgAccounting(); err != nil && !errors.Is(err, ebpf.ErrNotSupported) {
				t.Errorf("probeMemcgAccounting: %v", err)
				return
			}
		}
	})
	zero := 0
	for range 300 {
		out, err := exec.Command("/bin/sh", "-c", "ulimit -l").Output()
		if err != nil {
			t.Fatal(err)
		}
		if strings.TrimSpace(string(out)) == "0" {
			zero++
		}
	}
	stop.Store(true)
	wg.Wait()
	if zero > 0 {
		t.Errorf("%d of 300 children started while the memcg probe ran inherited RLIMIT_MEMLOCK 0", zero)
	}
}
