package guest

import (
	"errors"
	"testing"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/stallmon/stallmon/internal/tracker"
)

// 5.10 charges BPF memory to RLIMIT_MEMLOCK: under a 64 KiB limit a 1 MiB
// map is refused, LiftMemlock raises the limit, and the map is made.
func TestMemlockLiftedOnOldKernel(t *testing.T) {
	requireScenario(t, "old-kernel")
	var old unix.Rlimit
	if err := unix.Prlimit(0, unix.RLIMIT_MEMLOCK, nil, &old); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := unix.Prlimit(0, unix.RLIMIT_MEMLOCK, &old, nil); err != nil {
			t.Errorf("restoring RLIMIT_MEMLOCK: %v", err)
		}
	})
	if err := unix.Prlimit(0, unix.RLIMIT_MEMLOCK, &unix.Rlimit{Cur: 64 << 10, Max: old.Max}, nil); err != nil {
		t.Fatal(err)
	}
	spec := &ebpf.MapSpec{Type: ebpf.Array, KeySize: 4, ValueSize: 1024, MaxEntries: 1024}
	if m, err := ebpf.NewMap(spec); !errors.Is(err, unix.EPERM) {
		if err == nil {
			m.Close()
		}
		t.Fatalf("a 1 MiB map under a 64 KiB RLIMIT_MEMLOCK: %v, want EPERM: this kernel does not charge the limit", err)
	}
	raised, err := tracker.LiftMemlock()
	if err != nil || !raised {
		t.Fatalf("LiftMemlock() = %v, %v; want a raise on a kernel that charges RLIMIT_MEMLOCK", raised, err)
	}
	var now unix.Rlimit
	if err := unix.Prlimit(0, unix.RLIMIT_MEMLOCK, nil, &now); err != nil {
		t.Fatal(err)
	}
	if now.Cur != unix.RLIM_INFINITY {
		t.Errorf("RLIMIT_MEMLOCK after LiftMemlock = %+v, want unlimited", now)
	}
	m, err := ebpf.NewMap(spec)
	if err != nil {
		t.Fatalf("the 1 MiB map after LiftMemlock: %v", err)
	}
	m.Close()
}
