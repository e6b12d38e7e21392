package tracker

import (
	"log/slog"
	"os"
	"testing"

	"github.com/stallmon/stallmon/internal/testutil/privtest"
)

// The thread walk loads on its own, after the object (threads.go): a
// kernel that refuses it (6.1-6.7) costs the verifier that one program,
// never a second load of the object (a restart there must not pay it:
// 50-200 ms can miss a gated heartbeat's deadline). Measured before the
// change in the 6.1 VM: load() 1.37-3.73 s against 0.63-1.02 s for one
// load. The count is of whole-object loads, not of program ids, which
// other processes' loads move too.
func TestLoadVerifiesObjectOnce(t *testing.T) {
	privtest.Require(t)
	if _, err := LiftMemlock(); err != nil {
		t.Fatal(err)
	}
	sc, err := Process(os.Getpid()).open()
	if err != nil {
		t.Fatal(err)
	}
	defer sc.close()
	m := &Tracker{log: slog.New(slog.DiscardHandler), scope: sc, preAttach: map[int]preAttach{}, stale: map[int]staleWord{}, done: make(chan struct{})}
	before := objectLoads.Load()
	if err := m.load(); err != nil {
		t.Fatal(err)
	}
	defer m.closeObjects()
	// Where the kernel refuses the full object (5.10), the probe-chosen
	// load tries it first, by design, then loads the minimal one.
	want := int64(1)
	if m.Object() == ObjectMinimal && defaultFeatures != MinimalFeatures {
		want = 2
	}
	if n := objectLoads.Load() - before; n != want {
		t.Errorf("load() loaded the object %d times, want %d (object %s, thread walk loaded: %v)", n, want, m.Object(), m.threadLoaded)
	}
	if m.threadLoaded != threadWalkHere(t) {
		t.Errorf("thread walk loaded: %v, want %v (kernel >= 6.8: %v, object %s)", m.threadLoaded, threadWalkHere(t), threadWalkKernel(t), m.Object())
	}
}
