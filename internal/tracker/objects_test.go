package tracker

import (
	"errors"
	"io/fs"
	"runtime"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"

	"github.com/stallmon/stallmon/internal/testutil/privtest"
	"github.com/stallmon/stallmon/internal/tracker/gen"
)

// The minimal object is for kernels whose x86 verifier (before 5.12) or
// arm64 JIT (before 5.18) knows no atomic but a plain add: any other
// creeping back into its C (a __sync_fetch_and_or, a fetch-add whose
// result is used) would make it fail to load exactly where it is needed.
// The full object has the others, which proves the check sees them.
func TestMinimalObjectAtomicsArePlainAdds(t *testing.T) {
	for _, tc := range []struct {
		file      string
		wantOther bool
	}{
		{"gen/stallmon_minimal_x86_bpfel.o", false},
		{"gen/stallmon_minimal_arm64_bpfel.o", false},
		{"gen/stallmon_x86_bpfel.o", true},
		{"gen/stallmon_arm64_bpfel.o", true},
	} {
		spec, err := ebpf.LoadCollectionSpec(tc.file)
		if errors.Is(err, fs.ErrNotExist) {
			// A VM guest runs the test binary without the sources:
			// the objects of its own arch are embedded in it.
			spec, err = embeddedObject(tc.file)
			if spec == nil && err == nil {
				continue
			}
		}
		if err != nil {
			t.Fatal(err)
		}
		var adds, other int
		for name, p := range spec.Programs {
			for _, ins := range p.Instructions {
				switch op := ins.OpCode.AtomicOp(); op {
				case asm.InvalidAtomic:
				case asm.AddAtomic:
					adds++
				default:
					other++
					if !tc.wantOther {
						t.Errorf("%s: program %s has %v: %v", tc.file, name, op, ins)
					}
				}
			}
		}
		if adds == 0 || (other > 0) != tc.wantOther {
			t.Errorf("%s: %d plain atomic adds, %d other atomics; want some adds and others only in the full object", tc.file, adds, other)
		}
	}
}

// embeddedObject is the object file names as embedded in this binary,
// nil for another arch's.
func embeddedObject(file string) (*ebpf.CollectionSpec, error) {
	arch := map[string]string{"amd64": "x86", "arm64": "arm64"}[runtime.GOARCH]
	switch file {
	case "gen/stallmon_minimal_" + arch + "_bpfel.o":
		return gen.LoadStallmonMinimal()
	case "gen/stallmon_" + arch + "_bpfel.o":
		return gen.LoadStallmon()
	}
	return nil, nil
}

// --bpf-features=minimal loads the minimal object on a kernel that has
// everything, and it has measured where saved registers lie by the time
// Attach returns.
func TestMinimalObjectLoadsOnRequest(t *testing.T) {
	privtest.Require(t)
	p := startWorkload(t)
	m := attachWith(t, p.PID, Options{BPFFeatures: MinimalFeatures})
	if got := m.Object(); got != ObjectMinimal {
		t.Fatalf("Object() = %q, want %q", got, ObjectMinimal)
	}
	var off uint64
	if err := m.regsOffset.Get(&off); err != nil || off == 0 {
		t.Fatalf("saved registers' offset = %d (%v), want it measured", off, err)
	}
	r := do(t, p, "pipe-wait")
	th := mustThread(t, snapshot(t, m), fieldInt(t, r, "tid"))
	if !th.InSyscall || th.Syscall != "read" || th.FD != fieldInt(t, r, "fd") {
		t.Errorf("thread in a pipe read = %+v, want read(%d)", th, fieldInt(t, r, "fd"))
	}
	do(t, p, "pipe-release")
}

// The minimal object's records live in a preallocated hash: when it is
// full, a thread's syscall entry cannot be recorded, and the thread must
// go unknown (the agent then stops the heartbeat), never look idle. The
// test fills the map with records of no thread, takes every real
// thread's away, and has a thread enter a pipe read.
func TestMinimalFullRecordMapMakesThreadUnknown(t *testing.T) {
	privtest.Require(t)
	p := startWorkload(t)
	m := attachWith(t, p.PID, Options{BPFFeatures: MinimalFeatures})
	const noThread = 1 << 30 // above any pid_max
	fill := func() {
		for i := uint32(noThread); ; i++ {
			err := m.objs.Inflight.Update(i, gen.StallmonMinimalInflight{}, ebpf.UpdateNoExist)
			if errors.Is(err, ebpf.ErrKeyExist) {
				continue
			}
			if err != nil {
				return // full
			}
		}
	}
	// The workload's threads make syscalls meanwhile and take any slot
	// freed: until a pass finds none of theirs after filling.
	for pass := 0; ; pass++ {
		if pass == 100 {
			t.Fatal("the workload's threads kept taking freed slots for 100 passes")
		}
		fill()
		var real []uint32
		var key uint32
		var rec gen.StallmonMinimalInflight
		for it := m.objs.Inflight.Iterate(); it.Next(&key, &rec); {
			if key < noThread {
				real = append(real, key)
			}
		}
		if len(real) == 0 {
			break
		}
		for _, k := range real {
			_ = m.objs.Inflight.Delete(k)
		}
	}
	before, err := m.Counters()
	if err != nil {
		t.Fatal(err)
	}
	r := do(t, p, "pipe-wait")
	tid := fieldInt(t, r, "tid")
	th := mustThread(t, snapshot(t, m), tid)
	if th.Unrecorded == nil || !th.InSyscall || th.Syscall != "read" {
		t.Errorf("thread in a pipe read with the record map full = %+v, want unknown (unrecorded) in read", th)
	}
	after, err := m.Counters()
	if err != nil {
		t.Fatal(err)
	}
	if after.StorageFailed <= before.StorageFailed || after.UnrecordedThreads == 0 {
		t.Errorf("counters with the map full: storage failures %d -> %d, unrecorded threads %d; want more failures and some unknown",
			before.StorageFailed, after.StorageFailed, after.UnrecordedThreads)
	}
	do(t, p, "pipe-release")
}
