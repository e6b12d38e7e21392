package keepalived_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/stallmon/stallmon/internal/integrations/keepalived"
	"github.com/stallmon/stallmon/internal/sink"
	"github.com/stallmon/stallmon/internal/testutil/keepalivedtest"
)

// Bounds on the VIP's moves, from the template's advert_int 1: a FAULT
// sends a priority-0 advert and the backup takes over within its skew
// time (~0.6s); a return needs the preempting node's master-down timer
// (3 adverts + skew, ~3.2s); the first election as much again; the
// vrrp_script guard runs every second.
const (
	faultMove  = 2 * time.Second
	returnMove = 6 * time.Second
	guardMove  = 4 * time.Second
)

func apply(t *testing.T, s *keepalived.Sink, st sink.State) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	v := sink.Verdict{State: st, At: time.Now()}
	if st == sink.Alive {
		v.ValidUntil = time.Now().Add(time.Hour)
	}
	if err := s.Apply(ctx, v); err != nil {
		t.Fatalf("Apply(%v): %v", st, err)
	}
}

// The sink drives a real keepalived pair through the shipped template:
// node A holds the VIP only between an Alive verdict and the next
// unhealthy one, and loses it too when the process that writes its file
// dies without a word.
func TestVIPFollowsVerdict(t *testing.T) {
	keepalivedtest.Require(t)
	dirA, dirB := t.TempDir(), t.TempDir()
	fileA, fileB := filepath.Join(dirA, "verdict"), filepath.Join(dirB, "verdict")
	s, err := keepalived.New(fileA, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	writerA := keepalivedtest.StandIn(t, fileA)
	keepalivedtest.WriteFile(t, fileB, 0)
	keepalivedtest.StandIn(t, fileB)
	p := keepalivedtest.StartPair(t, fileA, fileB)

	// Starting: A is in FAULT although it has the higher priority.
	p.B.WaitVIP(t, returnMove)
	if p.A.HasVIP(t) {
		t.Fatal("VIP on A before any Alive verdict")
	}

	applied := time.Now()
	apply(t, s, sink.Alive)
	t.Logf("alive: VIP on A after %v", p.A.WaitVIP(t, returnMove).Sub(applied).Round(time.Millisecond))

	applied = time.Now()
	apply(t, s, sink.Stalled)
	moved := p.B.WaitVIP(t, faultMove)
	t.Logf("stalled: VIP on B after %v", moved.Sub(applied).Round(time.Millisecond))
	if p.A.HasVIP(t) {
		t.Error("VIP on both nodes after the handover")
	}

	applied = time.Now()
	apply(t, s, sink.Alive)
	t.Logf("alive again: VIP back on A after %v", p.A.WaitVIP(t, returnMove).Sub(applied).Round(time.Millisecond))

	// The writer dies with the file still saying 0: the guard moves it.
	killed := time.Now()
	if err := writerA.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	t.Logf("writer killed: VIP on B after %v", p.B.WaitVIP(t, guardMove).Sub(killed).Round(time.Millisecond))
}
