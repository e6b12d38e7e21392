package sink

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stallmon/stallmon/internal/event"
)

// recSink records what it applied and can be made to fail or block.
type recSink struct {
	name    string
	mu      sync.Mutex
	got     []Verdict
	fail    int           // fail this many more Applies
	block   chan struct{} // Apply waits on it (or ctx) when non-nil
	ignore  bool          // block ignoring ctx
	applied chan Verdict
	entered chan struct{} // one per Apply begun
}

func newRec(name string) *recSink {
	return &recSink{name: name, applied: make(chan Verdict, 64), entered: make(chan struct{}, 64)}
}

func (r *recSink) Name() string { return r.name }
func (r *recSink) Close() error { return nil }
func (r *recSink) Apply(ctx context.Context, v Verdict) error {
	r.entered <- struct{}{}
	r.mu.Lock()
	block, ignore := r.block, r.ignore
	r.mu.Unlock()
	if block != nil {
		if ignore {
			<-block
		} else {
			select {
			case <-block:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail > 0 {
		r.fail--
		return errors.New("injected failure")
	}
	r.got = append(r.got, v)
	r.applied <- v
	return nil
}

func (r *recSink) wait(t *testing.T, want State) Verdict {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case v := <-r.applied:
			if v.State == want {
				return v
			}
		case <-deadline:
			t.Fatalf("%s never applied %v", r.name, want)
		}
	}
}

func alive(at time.Time) Verdict {
	return Verdict{State: Alive, At: at, ValidUntil: at.Add(time.Hour)}
}

// A sink stuck in Apply delays neither the publisher nor another sink.
func TestHubStuckSinkDelaysNoOne(t *testing.T) {
	stuck, fast := newRec("stuck"), newRec("fast")
	stuck.block = make(chan struct{})
	h := Start([]Sink{stuck, fast}, Options{ApplyTimeout: time.Hour})
	defer func() { close(stuck.block); h.Stop(time.Second) }()

	h.Publish(alive(time.Now()))
	fast.wait(t, Alive)
	for range 100 {
		h.Publish(alive(time.Now())) // must not block on the stuck sink
	}
	h.Publish(Verdict{State: Stalled, At: time.Now()})
	fast.wait(t, Stalled)
	for _, s := range h.Stats() {
		if s.Name == "stuck" && s.Applied != 0 {
			t.Errorf("the stuck sink applied %d verdicts", s.Applied)
		}
	}
}

// A failing sink is retried until it succeeds, with the latest verdict;
// the failure run is logged once, its end once, and each failure counted.
func TestHubRetriesFailedApply(t *testing.T) {
	var logs bytes.Buffer
	var mu sync.Mutex
	log := slog.New(slog.NewTextHandler(lockedWriter{&mu, &logs}, nil))
	r := newRec("flaky")
	r.fail = 3
	h := Start([]Sink{r}, Options{Logger: log, RetryMax: 20 * time.Millisecond})
	h.Publish(Verdict{State: Stalled, At: time.Now()})
	r.wait(t, Stalled)
	h.Stop(time.Second)

	st := h.Stats()[0]
	if st.Failures != 3 || st.Applied != 1 || !st.OK || st.State != "stalled" {
		t.Errorf("stats %+v, want 3 failures, 1 applied, ok, stalled", st)
	}
	mu.Lock()
	defer mu.Unlock()
	if n := strings.Count(logs.String(), event.SinkFailed); n != 1 {
		t.Errorf("%d %s lines, want 1:\n%s", n, event.SinkFailed, logs.String())
	}
	if n := strings.Count(logs.String(), event.SinkRecovered); n != 1 {
		t.Errorf("%d %s lines, want 1:\n%s", n, event.SinkRecovered, logs.String())
	}
}

// Repeats of a state collapse while a sink is busy, changes do not, the
// queue is bounded, and the latest verdict always arrives.
func TestHubQueueCollapsesRepeatsKeepsChanges(t *testing.T) {
	r := newRec("slow")
	r.block = make(chan struct{})
	h := Start([]Sink{r}, Options{ApplyTimeout: time.Hour})
	h.Publish(alive(time.Now())) // taken at once, then blocks in Apply
	waitBlocked(t, h)
	for range 5 {
		h.Publish(alive(time.Now()))
	}
	h.Publish(Verdict{State: Stalled, At: time.Now()})
	h.Publish(Verdict{State: Stalled, At: time.Now()})
	h.Publish(Verdict{State: Fenced, At: time.Now(), Final: true})
	close(r.block)
	h.Stop(5 * time.Second)

	var states []State
	for _, v := range r.got {
		states = append(states, v.State)
	}
	want := []State{Alive, Alive, Stalled, Fenced}
	if len(states) != len(want) {
		t.Fatalf("applied %v, want %v", states, want)
	}
	for i := range want {
		if states[i] != want[i] {
			t.Fatalf("applied %v, want %v", states, want)
		}
	}

	// Over queueLen changes while blocked: the oldest go, the last stays.
	r2 := newRec("slower")
	r2.block = make(chan struct{})
	h2 := Start([]Sink{r2}, Options{ApplyTimeout: time.Hour})
	h2.Publish(alive(time.Now()))
	waitBlocked(t, h2)
	for i := range 2 * queueLen {
		st := Stalled
		if i%2 == 1 {
			st = Blind
		}
		h2.Publish(Verdict{State: st, At: time.Now()})
	}
	h2.Publish(Verdict{State: Leaving, At: time.Now(), Final: true})
	close(r2.block)
	h2.Stop(5 * time.Second)
	if last := r2.got[len(r2.got)-1]; last.State != Leaving {
		t.Errorf("last applied %v, want leaving", last.State)
	}
	if st := h2.Stats()[0]; st.Dropped == 0 || len(r2.got) != 1+queueLen {
		t.Errorf("applied %d, dropped %d: want %d applied and some dropped", len(r2.got), st.Dropped, 1+queueLen)
	}
}

// An alive verdict that waited past the poll it rests on is not applied.
func TestHubSkipsStaleAlive(t *testing.T) {
	r := newRec("late")
	r.block = make(chan struct{})
	h := Start([]Sink{r}, Options{ApplyTimeout: time.Hour})
	h.Publish(Verdict{State: Blind, At: time.Now()})
	waitBlocked(t, h)
	now := time.Now()
	h.Publish(Verdict{State: Alive, At: now, ValidUntil: now.Add(-time.Millisecond)})
	h.Publish(Verdict{State: Stalled, At: now})
	close(r.block)
	h.Stop(5 * time.Second)
	for _, v := range r.got {
		if v.State == Alive {
			t.Fatalf("a stale alive verdict was applied: %+v", r.got)
		}
	}
	if len(r.got) != 2 {
		t.Fatalf("applied %d verdicts, want blind and stalled", len(r.got))
	}
}

// Stop waits for the final verdict, but not for ever: a sink that ignores
// its context is abandoned once the flush and one apply timeout passed.
func TestHubStopIsBounded(t *testing.T) {
	r := newRec("deaf")
	r.block = make(chan struct{})
	r.ignore = true
	defer close(r.block)
	var logs bytes.Buffer
	var mu sync.Mutex
	h := Start([]Sink{r}, Options{Logger: slog.New(slog.NewTextHandler(lockedWriter{&mu, &logs}, nil)), ApplyTimeout: 100 * time.Millisecond})
	h.Publish(Verdict{State: Stalled, At: time.Now()})
	waitBlocked(t, h)
	h.Publish(Verdict{State: Fenced, At: time.Now(), Final: true})
	start := time.Now()
	h.Stop(100 * time.Millisecond)
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Stop took %v", d)
	}
	mu.Lock()
	defer mu.Unlock()
	if !strings.Contains(logs.String(), event.SinkAbandoned) {
		t.Errorf("no %s logged:\n%s", event.SinkAbandoned, logs.String())
	}
}

// waitBlocked waits until the sink is inside an Apply, so that what is
// published next queues behind it.
func waitBlocked(t *testing.T, h *Hub) {
	t.Helper()
	r := h.workers[0].sink.(*recSink)
	select {
	case <-r.entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the sink never began an Apply")
	}
}

// Settle returns once what was published is applied, and gives up at its
// timeout on a sink that is stuck.
func TestHubSettle(t *testing.T) {
	r := newRec("quick")
	h := Start([]Sink{r}, Options{})
	defer h.Stop(time.Second)
	h.Publish(Verdict{State: Stalled, At: time.Now()})
	if !h.Settle(10 * time.Second) {
		t.Fatal("Settle timed out on a sink that applies at once")
	}
	r.mu.Lock()
	n := len(r.got)
	r.mu.Unlock()
	if n != 1 {
		t.Fatalf("Settle returned with %d verdicts applied, want 1", n)
	}

	stuck := newRec("stuck")
	stuck.block = make(chan struct{})
	h2 := Start([]Sink{stuck}, Options{ApplyTimeout: time.Hour})
	defer func() { close(stuck.block); h2.Stop(time.Second) }()
	h2.Publish(Verdict{State: Stalled, At: time.Now()})
	start := time.Now()
	if h2.Settle(50 * time.Millisecond) {
		t.Fatal("Settle reported a stuck sink settled")
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("Settle took %v", d)
	}
}

// A final verdict stuck in Apply when Stop gives up is reported, and the
// sink is marked down.
func TestHubStopReportsVerdictInFlight(t *testing.T) {
	r := newRec("deaf")
	r.block = make(chan struct{})
	r.ignore = true
	defer close(r.block)
	var logs bytes.Buffer
	var mu sync.Mutex
	h := Start([]Sink{r}, Options{Logger: slog.New(slog.NewTextHandler(lockedWriter{&mu, &logs}, nil)), ApplyTimeout: 50 * time.Millisecond})
	h.Publish(Verdict{State: Fenced, At: time.Now(), Final: true})
	waitBlocked(t, h)
	h.Stop(50 * time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	if !strings.Contains(logs.String(), event.SinkAbandoned) || !strings.Contains(logs.String(), "applying=true") {
		t.Errorf("no %s for the verdict in flight:\n%s", event.SinkAbandoned, logs.String())
	}
	if h.Stats()[0].OK {
		t.Error("a sink abandoned in Apply reads as up")
	}
}

// A sink reads as down until its first verdict is applied.
func TestHubNotUpBeforeFirstApply(t *testing.T) {
	r := newRec("new")
	r.block = make(chan struct{})
	h := Start([]Sink{r}, Options{})
	if h.Stats()[0].OK {
		t.Error("up before any verdict")
	}
	close(r.block)
	h.Publish(Verdict{State: Blind, At: time.Now()})
	r.wait(t, Blind)
	h.Stop(time.Second)
	if !h.Stats()[0].OK {
		t.Error("down after a successful apply")
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	b  *bytes.Buffer
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}
