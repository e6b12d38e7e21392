package tracker

import (
	"log/slog"
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

// The thread walk loads on its own, after the object (threads.go): a
// kernel that refuses it (6.1-6.7) costs the verifier that one program,
// never a second pass over the object (a restart there must not pay it:
// 50-200 ms can miss a gated heartbeat's deadline), and a kernel that
// takes it verifies the object, its stub, and the thread walk once each.
// The count is the programs the verifier passed during load(): program
// ids only grow, one per program that passed.
func TestLoadVerifiesObjectOnce(t *testing.T) {
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
	m := &Tracker{log: slog.New(slog.DiscardHandler), scope: sc, preAttach: map[int]preAttach{}, stale: map[int]staleWord{}, done: make(chan struct{})}
	before := nextProgID(t)
	if err := m.load(); err != nil {
		t.Fatal(err)
	}
	defer m.closeObjects()
	after := nextProgID(t)
	want := len(spec.Programs)
	if m.threadLoaded {
		want++
	}
	if want != len(spec.Programs)+1 && threadWalkHere(t) {
		t.Errorf("the thread walk did not load on a kernel that has it")
	}
	if passed := int(after-before) - 1; passed != want {
		t.Errorf("load() had the verifier pass %d programs, want %d (the object's %d, thread walk loaded: %v)",
			passed, want, len(spec.Programs), m.threadLoaded)
	}
}
