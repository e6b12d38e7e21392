package tracker

import (
	"errors"
	"io/fs"
	"runtime"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
)

// bpf/regsseen.h orders the thread walk's loads on arm64 with an atomic
// on regs_seen_fence, counting on a BPF atomic that fetches being fully
// ordered. One whose result is unused is emitted without BPF_FETCH, which
// the arm64 JIT turns into a relaxed STSET: nothing would then order the
// load of on_cpu, of the switch count and of the saved registers, and a
// copy made of registers read before the count could leave a thread that
// ran and hung in another syscall out as quiet on every pass. Every
// atomic on the fence must fetch (it failed with the result unused).
func TestRegsFenceFetchesOnArm64(t *testing.T) {
	const file = "gen/stallmon_arm64_bpfel.o"
	spec, err := ebpf.LoadCollectionSpec(file)
	if errors.Is(err, fs.ErrNotExist) {
		// A VM guest runs without the sources: only an arm64 guest has
		// this object, embedded; the host's run checks it everywhere.
		if spec, err = embeddedObject(file); spec == nil && err == nil {
			t.Skipf("%s is not in this %s guest; the host's run checks it", file, runtime.GOARCH)
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	v, ok := spec.Variables["regs_seen_fence"]
	if !ok {
		t.Fatal("no regs_seen_fence in the full arm64 object")
	}
	p, ok := spec.Programs["snapshot_threads"]
	if !ok {
		t.Fatal("no snapshot_threads in the full arm64 object")
	}
	// The register that holds the fence's address, from its ldimm64 on.
	fenceReg := asm.R0
	var fences int
	for i, ins := range p.Instructions {
		if ins.IsLoadFromMap() && ins.Reference() == v.SectionName && uint32(ins.Constant>>32) == v.Offset {
			fenceReg = ins.Dst
			continue
		}
		op := ins.OpCode.AtomicOp()
		if op == asm.InvalidAtomic || fenceReg == asm.R0 || ins.Dst != fenceReg {
			continue
		}
		fences++
		switch op {
		case asm.FetchAdd, asm.FetchAnd, asm.FetchOr, asm.FetchXor, asm.Xchg, asm.CmpXchg:
		default:
			t.Errorf("instruction %d: the fence is %v, which the arm64 JIT emits relaxed: %v", i, op, ins)
		}
	}
	if fences == 0 {
		t.Fatal("no atomic on regs_seen_fence found in snapshot_threads")
	}
}
