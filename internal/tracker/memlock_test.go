package tracker

import (
	"errors"
	"testing"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/stallmon/stallmon/internal/testutil/privtest"
)

// lowMemlock sets the soft RLIMIT_MEMLOCK to 64 KiB for the test.
func lowMemlock(t *testing.T) unix.Rlimit {
	t.Helper()
	var old unix.Rlimit
	if err := unix.Prlimit(0, unix.RLIMIT_MEMLOCK, nil, &old); err != nil {
		t.Fatal(err)
	}
	low := unix.Rlimit{Cur: 64 << 10, Max: old.Max}
	if err := unix.Prlimit(0, unix.RLIMIT_MEMLOCK, &low, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := unix.Prlimit(0, unix.RLIMIT_MEMLOCK, &old, nil); err != nil {
			t.Errorf("restoring RLIMIT_MEMLOCK: %v", err)
		}
	})
	return low
}

// A kernel that charges BPF memory to the memory cgroup (the host's) gets
// no raise: the operator's limit stays, and attach works under it, as
// does a map sixteen times the limit.
//
// Where the probe finds no such accounting (Linux 5.10), the limit must be
// raised instead: the guest's TestMemlockLiftedOnOldKernel checks that.
func TestMemlockLeftAloneWithMemcgAccounting(t *testing.T) {
	privtest.Require(t)
	if err := probeMemcgAccounting(); errors.Is(err, ebpf.ErrNotSupported) {
		t.Skipf("%s (Linux 5.11+) is absent on this kernel, which the probe says: %v", FeatureMemcg, err)
	} else if err != nil {
		t.Fatalf("probing for %s: %v", FeatureMemcg, err)
	}
	low := lowMemlock(t)
	memcgFound.Store(false) // an earlier attach of this process would have kept the verdict, skipping the probe
	raised, err := LiftMemlock()
	if err != nil || raised {
		t.Fatalf("LiftMemlock() = %v, %v; want no raise on a kernel with memcg accounting", raised, err)
	}
	w := startWorkload(t)
	attach(t, w.PID)
	var now unix.Rlimit
	if err := unix.Prlimit(0, unix.RLIMIT_MEMLOCK, nil, &now); err != nil {
		t.Fatal(err)
	}
	if now != low {
		t.Errorf("RLIMIT_MEMLOCK after attach = %+v, want it left at %+v", now, low)
	}
	m, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.Array, KeySize: 4, ValueSize: 1024, MaxEntries: 1024})
	if err != nil {
		t.Fatalf("a 1 MiB map under a 64 KiB RLIMIT_MEMLOCK: %v; the kernel charges the limit, and the probe said it does not", err)
	}
	m.Close()
}
