package agent

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stallmon/stallmon/internal/budget"
	"github.com/stallmon/stallmon/internal/testutil/privtest"
	"github.com/stallmon/stallmon/internal/testutil/workloadtest"
	"github.com/stallmon/stallmon/internal/tracker"
)

// fakeEgress is an EgressGate that keeps what the agent told it.
type fakeEgress struct {
	mu     sync.Mutex
	vouch  []egressCall
	shut   []egressCall
	vouchd chan struct{}
}

type egressCall struct {
	at     time.Time // when the agent called
	until  time.Time // Vouch's argument
	reason string    // Shut's argument
}

func newFakeEgress() *fakeEgress { return &fakeEgress{vouchd: make(chan struct{}, 1)} }

func (f *fakeEgress) Vouch(until time.Time) {
	f.mu.Lock()
	f.vouch = append(f.vouch, egressCall{at: time.Now(), until: until})
	f.mu.Unlock()
	select {
	case f.vouchd <- struct{}{}:
	default:
	}
}

func (f *fakeEgress) Shut(reason string) {
	f.mu.Lock()
	f.shut = append(f.shut, egressCall{at: time.Now(), reason: reason})
	f.mu.Unlock()
}

func (f *fakeEgress) calls() (vouch, shut []egressCall) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]egressCall(nil), f.vouch...), append([]egressCall(nil), f.shut...)
}

// startEgress runs an agent polling every beatPoll on a workload of its
// own with eg as its egress gate, and returns once eg was vouched for.
// stop cancels Run and waits for it.
func startEgress(t *testing.T, eg EgressGate, vouched <-chan struct{}) (mon *tracker.Tracker, stop func()) {
	t.Helper()
	privtest.Require(t)
	w := workloadtest.Start(t)
	mon, err := tracker.Attach(tracker.Process(w.PID), nil, tracker.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mon.Close() })
	table, err := budget.Parse([]byte("default: {budget: 1s, kill_after: 5s}\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	a, err := New(mon, Config{PollInterval: beatPoll, Table: table, Egress: eg})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); a.Run(ctx) }()
	stop = sync.OnceFunc(func() { cancel(); <-done })
	t.Cleanup(stop)
	select {
	case <-vouched:
	case <-time.After(10 * time.Second):
		t.Fatal("the egress gate was never vouched for")
	}
	return mon, stop
}

// A failed poll vouches for nothing: once the tracker breaks, no Vouch
// reaches past the last good poll's freshness (two poll intervals), so
// the service's packets stop within two intervals of the last good poll,
// as docs/egress.md promises, however many failed polls follow.
func TestEgressFailedPollDoesNotVouch(t *testing.T) {
	eg := newFakeEgress()
	mon, _ := startEgress(t, eg, eg.vouchd)
	broken := time.Now()
	if err := mon.Close(); err != nil {
		t.Fatal(err)
	}
	// Wait, polling, until the gate was shut after the break: the
	// agent found the last good poll stale.
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, shut := eg.calls()
		if len(shut) > 0 && shut[len(shut)-1].at.After(broken) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the egress gate was not shut within 10s of the tracker breaking")
		}
		time.Sleep(beatPoll / 5)
	}
	// A poll under way at the break may still have read a good
	// snapshot: its vouch reaches two intervals past its end, a few ms
	// after the break (half an interval of slack for a slow CI host).
	limit := broken.Add(2*beatPoll + beatPoll/2)
	vouch, _ := eg.calls()
	for _, v := range vouch {
		if v.until.After(limit) {
			t.Errorf("vouched at %v after the break until %v after it, want nothing past %v",
				v.at.Sub(broken), v.until.Sub(broken), limit.Sub(broken))
		}
	}
}
