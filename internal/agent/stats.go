package agent

import (
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/stallmon/stallmon/internal/event"
	"github.com/stallmon/stallmon/internal/sink"
	"github.com/stallmon/stallmon/internal/tracker"
)

// Stats is a copy of what the agent has done and what its latest poll
// saw, for metrics. Counters only grow over the agent's life; the maps
// hold only keys that were counted at least once.
type Stats struct {
	PID int
	// NodeID is the heartbeat's node id, "" without a heartbeat.
	NodeID string
	// Gate is what the heartbeat may say now: one of GateStates().
	Gate string
	// Unknown says why the gate is blind on a fresh poll: a thread the
	// tracker lost sight of. Empty when not blind, or blind for want of a
	// fresh poll.
	Unknown string
	// Unkillable is set once the target outlived its kill grace.
	Unkillable bool
	// Tampered is set once a link of the tracker was found changed from
	// outside: the gate stays blind until stallmon attaches anew.
	Tampered bool

	// Sinks are the verdict's consumers (the heartbeat and integrations),
	// as the current or latest run left them.
	Sinks []sink.Stats

	HeartbeatsSent      map[string]uint64 // by packet state: alive, stalled, fenced, leaving
	HeartbeatSendErrors map[string]uint64 // by packet state
	Stalls              map[string]uint64 // stalls begun, by syscall
	Kills               map[string]uint64 // SIGKILLs sent, by the syscall that went past kill_after

	Polls        uint64 // successful polls
	PollFailures uint64 // polls whose snapshot failed
	LatePolls    uint64 // polls that came over two intervals after the previous one
	PollDuration Histogram
	// PollLag is how much later than its interval each poll started: the
	// agent's own scheduling delay.
	PollLag  Histogram
	LastPoll time.Time // start of the latest successful poll; zero before
	// LastLoop is the start of the latest poll, failed or not: the loop
	// is alive while it keeps moving.
	LastLoop time.Time

	// InFlight and Stalled are from the latest successful poll.
	InFlight []InFlight      // by syscall name, sorted
	Stalled  []StalledThread // threads over budget, sorted by tid
	// Listeners are the target's listening sockets at the latest poll,
	// read only while the table's work_waiting rule is on.
	Listeners []ListenerQueue
}

// InFlight is the target's threads inside one syscall.
type InFlight struct {
	Syscall string
	Threads int
	Oldest  time.Duration
}

// StalledThread is one thread whose syscall is over its budget.
type StalledThread struct {
	TID       int
	Comm      string
	Syscall   string
	FDKind    string
	Elapsed   time.Duration
	Budget    time.Duration
	KillAfter time.Duration // zero: never killed
	// Wait names what it sleeps on ("fuse request_wait_answer") and
	// Stack its kernel frames; both empty when it was not asleep.
	Wait, Stack string
}

// Histogram is a fixed-bucket histogram. Counts are per bucket, not
// cumulative, with one more element than Bounds for the overflow.
type Histogram struct {
	Bounds []time.Duration
	Counts []uint64
	Count  uint64
	Sum    time.Duration
}

func newHistogram(bounds []time.Duration) Histogram {
	return Histogram{Bounds: bounds, Counts: make([]uint64, len(bounds)+1)}
}

func (h *Histogram) observe(d time.Duration) {
	i, _ := slices.BinarySearch(h.Bounds, d)
	h.Counts[i]++
	h.Count++
	h.Sum += d
}

func (h Histogram) clone() Histogram {
	h.Bounds = slices.Clone(h.Bounds)
	h.Counts = slices.Clone(h.Counts)
	return h
}

// pollBounds are the buckets of Stats.PollDuration and Stats.PollLag:
// a snapshot takes around 100 µs, and a lag near the poll interval is
// what makes the gate go blind.
var pollBounds = []time.Duration{
	100 * time.Microsecond, 250 * time.Microsecond, 500 * time.Microsecond,
	time.Millisecond, 2500 * time.Microsecond, 5 * time.Millisecond,
	10 * time.Millisecond, 25 * time.Millisecond, 50 * time.Millisecond,
	100 * time.Millisecond, 250 * time.Millisecond, 500 * time.Millisecond,
	time.Second, 2500 * time.Millisecond, 5 * time.Second,
}

// GateStates returns the names Stats.Gate takes.
func GateStates() []string {
	return []string{gateAlive.String(), gateStalled.String(), gateBlind.String(), gateFenced.String()}
}

// Stats returns the agent's statistics. It is safe to call from any
// goroutine while Run runs, and after.
func (a *Agent) Stats() Stats {
	st := a.stats.snapshot()
	gs, _, _, unknown := a.gate.read(time.Now())
	st.Gate, st.Unknown = gs.String(), unknown
	st.PID = a.mon.PID()
	if a.beacon != nil {
		st.NodeID = a.beacon.cfg.NodeID
	}
	a.hubMu.Lock()
	if a.hub != nil {
		st.Sinks = a.hub.Stats()
	}
	a.hubMu.Unlock()
	if h := a.cfg.Integrations; h != nil {
		st.Sinks = append(st.Sinks, h.Stats()...)
	}
	return st
}

// statsRecorder accumulates Stats. The poll loop, the beacon and the fencing
// path feed it through small hook calls; metrics scrapes read it from
// their own goroutine.
type statsRecorder struct {
	interval time.Duration

	mu sync.Mutex
	st Stats
}

// pollTiming is when a poll started and how late it was, as the agent's
// loop judged it.
type pollTiming struct {
	start time.Time
	gap   time.Duration // since the previous poll, 0 for the first
	late  bool          // over two intervals after the previous one
}

func newStatsRecorder(interval time.Duration) *statsRecorder {
	return &statsRecorder{interval: interval, st: Stats{
		HeartbeatsSent: map[string]uint64{}, HeartbeatSendErrors: map[string]uint64{},
		Stalls: map[string]uint64{}, Kills: map[string]uint64{},
		PollDuration: newHistogram(pollBounds), PollLag: newHistogram(pollBounds),
	}}
}

// tick accounts for a poll, successful or not; the caller holds mu.
func (r *statsRecorder) tick(pt pollTiming) {
	r.st.LastLoop = pt.start
	if pt.gap > 0 {
		r.st.PollLag.observe(max(pt.gap-r.interval, 0))
	}
	if pt.late {
		r.st.LatePolls++
	}
	r.st.PollDuration.observe(time.Since(pt.start))
}

func (r *statsRecorder) pollFailed(pt pollTiming) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.tick(pt)
	r.st.PollFailures++
}

func (r *statsRecorder) polled(pt pollTiming, snap tracker.Snapshot, over []judged) {
	inFlight := map[string]*InFlight{}
	for _, t := range snap.InFlight() {
		f := inFlight[t.Syscall]
		if f == nil {
			f = &InFlight{Syscall: t.Syscall}
			inFlight[t.Syscall] = f
		}
		f.Threads++
		f.Oldest = max(f.Oldest, t.Elapsed)
	}
	for _, q := range snap.QuietInFlight {
		f := inFlight[q.Syscall]
		if f == nil {
			f = &InFlight{Syscall: q.Syscall}
			inFlight[q.Syscall] = f
		}
		f.Threads += q.Threads
		f.Oldest = max(f.Oldest, q.Oldest)
	}
	flights := make([]InFlight, 0, len(inFlight))
	for _, name := range slices.Sorted(maps.Keys(inFlight)) {
		flights = append(flights, *inFlight[name])
	}
	stalled := make([]StalledThread, 0, len(over))
	for _, j := range over {
		st := StalledThread{
			TID: j.thread.TID, Comm: j.thread.Comm, Syscall: j.thread.Syscall, FDKind: j.fd.Kind.String(),
			Elapsed: j.span, Budget: j.rule.Budget, KillAfter: j.rule.KillAfter,
		}
		if w := j.thread.Wait; w.Captured() {
			st.Wait, st.Stack = w.String(), w.Stack()
		}
		stalled = append(stalled, st)
	}
	slices.SortFunc(stalled, func(a, b StalledThread) int { return a.TID - b.TID })

	r.mu.Lock()
	defer r.mu.Unlock()
	r.tick(pt)
	r.st.Polls++
	r.st.LastPoll = pt.start
	r.st.InFlight, r.st.Stalled = flights, stalled
}

// listeners records the latest listener scan; it copies qs, which the
// caller reuses.
func (r *statsRecorder) listeners(qs []ListenerQueue) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.st.Listeners = slices.Clone(qs)
}

func (r *statsRecorder) sent(state string, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		r.st.HeartbeatSendErrors[state]++
		return
	}
	r.st.HeartbeatsSent[state]++
}

// event counts the events that metrics report. Counting them where they
// are logged keeps the metrics and the event log from ever disagreeing.
func (r *statsRecorder) event(name string, attrs []slog.Attr) {
	syscall := func() string {
		for _, a := range attrs {
			if a.Key == "syscall" {
				return a.Value.String()
			}
		}
		return ""
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	switch name {
	case event.Stall:
		r.st.Stalls[syscall()]++
	case event.Kill:
		r.st.Kills[syscall()]++
	case event.Unkillable:
		r.st.Unkillable = true
	case event.TrackerTampered:
		r.st.Tampered = true
	}
}

func (r *statsRecorder) snapshot() Stats {
	r.mu.Lock()
	defer r.mu.Unlock()
	st := r.st
	st.HeartbeatsSent = maps.Clone(st.HeartbeatsSent)
	st.HeartbeatSendErrors = maps.Clone(st.HeartbeatSendErrors)
	st.Stalls = maps.Clone(st.Stalls)
	st.Kills = maps.Clone(st.Kills)
	st.PollDuration = st.PollDuration.clone()
	st.PollLag = st.PollLag.clone()
	// InFlight and Stalled are replaced, never modified, by polled.
	return st
}
