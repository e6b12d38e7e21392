package tracker

import (
	"os"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"

	"github.com/stallmon/stallmon/internal/testutil/privtest"
	"github.com/stallmon/stallmon/internal/tracker/gen"
)

// nextProgID is the id the kernel gives the next program it loads: ids
// only grow, one per program that passed the verifier.
func nextProgID(t *testing.T) ebpf.ProgramID {
	t.Helper()
	p, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Type:         ebpf.SocketFilter,
		License:      "GPL",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 0), asm.Return()},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	info, err := p.Info()
	if err != nil {
		t.Fatal(err)
	}
	id, ok := info.ID()
	if !ok {
		t.Skip("the kernel does not report program ids")
	}
	return id
}

// A start on a kernel without the thread walk (6.1-6.7) loads the whole
// object, which fails only at its last program, snapshot_threads, after
// the verifier has passed every other one, and then loads it all again
// with the stub (tracker.go load). Measured in the bookworm VM (6.1,
// TCG): load() 1.37-3.73 s against 0.63-1.02 s for the stubbed object
// alone, about twice; on the 6.18 host one load is 80-95 ms. A restart
// there pays a second verification of everything, the very cost the
// tracker refuses to pay for its feature probes (50-200 ms, enough to
// miss a gated heartbeat's deadline). This test counts the programs the
// verifier passed during load(): more than the object holds means a
// second load. It runs where the thread walk does not load (the VM's
// 6.1) and fails there while that is so.
func TestLoadVerifiesObjectOnceWithoutThreadWalk(t *testing.T) {
	privtest.Require(t)
	if _, err := LiftMemlock(); err != nil {
		t.Fatal(err)
	}
	spec, err := gen.LoadStallmon()
	if err != nil {
		t.Fatal(err)
	}
	sc, err := Process(os.Getpid()).open()
	if err != nil {
		t.Fatal(err)
	}
	defer sc.close()
	m := &Tracker{scope: sc, preAttach: map[int]preAttach{}, stale: map[int]staleWord{}, done: make(chan struct{})}
	before := nextProgID(t)
	if err := m.load(); err != nil {
		t.Fatal(err)
	}
	defer m.closeObjects()
	after := nextProgID(t)
	if m.threadLoaded {
		t.Skip("the thread walk loads here: one load, the case is not made")
	}
	passed := int(after-before) - 1
	if passed > len(spec.Programs) {
		t.Errorf("load() had the verifier pass %d programs; the object holds %d: it was verified %.1f times",
			passed, len(spec.Programs), float64(passed)/float64(len(spec.Programs)))
	}
}
