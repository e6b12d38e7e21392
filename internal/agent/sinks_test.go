package agent

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stallmon/stallmon/heartbeat"
	"github.com/stallmon/stallmon/internal/sink"
	"github.com/stallmon/stallmon/internal/tracker"
)

// verdicts is a sink that keeps every verdict applied.
type verdicts struct {
	mu  sync.Mutex
	got []sink.Verdict
	ch  chan sink.Verdict
}

func (v *verdicts) Name() string { return "verdicts" }
func (v *verdicts) Close() error { return nil }
func (v *verdicts) Apply(_ context.Context, x sink.Verdict) error {
	v.mu.Lock()
	v.got = append(v.got, x)
	v.mu.Unlock()
	select {
	case v.ch <- x:
	default:
	}
	return nil
}

func (v *verdicts) wait(t *testing.T, st sink.State) sink.Verdict {
	t.Helper()
	deadline := time.After(15 * time.Second)
	for {
		select {
		case x := <-v.ch:
			if x.State == st {
				return x
			}
		case <-deadline:
			t.Fatalf("no %v verdict within 15s", st)
		}
	}
}

// stuckSink never returns from Apply until its context ends.
type stuckSink struct{ entered chan struct{} }

func (s *stuckSink) Name() string { return "stuck" }
func (s *stuckSink) Close() error { return nil }
func (s *stuckSink) Apply(ctx context.Context, _ sink.Verdict) error {
	select {
	case s.entered <- struct{}{}:
	default:
	}
	<-ctx.Done()
	return ctx.Err()
}

// Integrations hear what the heartbeat says, from the same gate: alive
// with the target's pid, then the real hung read as stalled, then the
// final fenced once the kill is confirmed. A sink stuck in every call
// delays none of it.
func TestSinksHearStallAndFence(t *testing.T) {
	w, mon, table := watchHang(t, 200*time.Millisecond, time.Second)
	rec := &recorder{got: make(chan heartbeat.Packet, 64)}
	got := &verdicts{ch: make(chan sink.Verdict, 64)}
	stuck := &stuckSink{entered: make(chan struct{}, 1)}
	a, err := New(mon, Config{PollInterval: 50 * time.Millisecond, Table: table, Kill: true, KillGrace: 5 * time.Second,
		Heartbeat:    &HeartbeatConfig{Sender: rec, Interval: 50 * time.Millisecond, NodeID: "n"},
		Integrations: integrations(t, stuck, got)})
	if err != nil {
		t.Fatal(err)
	}
	type result struct {
		out Outcome
		err error
	}
	done := make(chan result, 1)
	go func() { o, err := a.Run(context.Background()); done <- result{o, err} }()

	if v := got.wait(t, sink.Alive); v.PID != w.PID || v.ValidUntil.IsZero() {
		t.Fatalf("alive verdict %+v, want pid %d and a freshness bound", v, w.PID)
	}
	<-stuck.entered
	if _, err := w.Do("uffd-hang"); err != nil {
		t.Fatal(err)
	}
	v := got.wait(t, sink.Stalled)
	if v.Stall == nil || v.Stall.Syscall != "read" || v.Stall.PID != w.PID || v.Deadline.IsZero() {
		t.Fatalf("stalled verdict %+v (stall %+v), want the hung read of pid %d and a deadline", v, v.Stall, w.PID)
	}
	v = got.wait(t, sink.Fenced)
	if !v.Final || v.Stall == nil || v.Stall.Syscall != "read" {
		t.Fatalf("fenced verdict %+v, want final, naming the read", v)
	}
	r := <-done
	if r.err != nil || r.out != TargetKilled {
		t.Fatalf("Run = %v, %v; want TargetKilled", r.out, r.err)
	}
	var states []heartbeat.State
	for _, p := range rec.packets() {
		if len(states) == 0 || states[len(states)-1] != p.State {
			states = append(states, p.State)
		}
	}
	want := []heartbeat.State{heartbeat.StateAlive, heartbeat.StateStalled, heartbeat.StateFenced}
	if len(states) != len(want) || states[0] != want[0] || states[1] != want[1] || states[2] != want[2] {
		t.Fatalf("heartbeat went %v, want %v", states, want)
	}
	assertStallBeforeFence(t, got)
	for _, s := range a.Stats().Sinks {
		if s.Name == "stuck" && (s.OK || s.Failures == 0) {
			t.Errorf("the stuck sink's record %+v shows no failure", s)
		}
	}
}

// assertStallBeforeFence checks that no stalled verdict follows a fenced
// one: a sink acting on edges (systemd's trigger) would act twice, and a
// peer would hear STALLED after FENCED.
func assertStallBeforeFence(t *testing.T, v *verdicts) {
	t.Helper()
	v.mu.Lock()
	defer v.mu.Unlock()
	fenced := false
	var states []sink.State
	for _, x := range v.got {
		states = append(states, x.State)
		if x.State == sink.Fenced {
			fenced = true
		}
		if fenced && x.State == sink.Stalled {
			t.Fatalf("stalled after fenced: %v", states)
		}
	}
}

// A stall past kill_after at the very poll that first sees it is fenced at
// once; the sinks hear it stalled, then fenced, never the other way round.
// Run several times: the publisher's tick races the kill path.
func TestSinksHearImmediateKillInOrder(t *testing.T) {
	for i := range 5 {
		w, mon, table := watchHang(t, 100*time.Millisecond, 100*time.Millisecond)
		got := &verdicts{ch: make(chan sink.Verdict, 256)}
		hub := integrations(t, got)
		a, err := New(mon, Config{PollInterval: 20 * time.Millisecond, Table: table, Kill: true, KillGrace: 5 * time.Second,
			Heartbeat:    &HeartbeatConfig{Sender: &recorder{got: make(chan heartbeat.Packet, 1)}, Interval: 5 * time.Millisecond, NodeID: "n"},
			Integrations: hub})
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan Outcome, 1)
		go func() { o, _ := a.Run(context.Background()); done <- o }()
		got.wait(t, sink.Alive)
		if _, err := w.Do("uffd-hang"); err != nil {
			t.Fatal(err)
		}
		if o := <-done; o != TargetKilled {
			t.Fatalf("trial %d: outcome %v, want killed", i, o)
		}
		// The integrations hear the end in their own time.
		if !hub.Settle(10 * time.Second) {
			t.Fatal("the integrations did not settle")
		}
		assertStallBeforeFence(t, got)
		got.mu.Lock()
		last := got.got[len(got.got)-1]
		got.mu.Unlock()
		if last.State != sink.Fenced || !last.Final {
			t.Fatalf("trial %d: last verdict %+v, want the final fenced", i, last)
		}
	}
}

// integrations starts a hub for sinks, stopped at the end of the test, as
// cmd/stallmon does for the life of the process.
func integrations(t *testing.T, sinks ...sink.Sink) *sink.Hub {
	t.Helper()
	h := sink.Start(sinks, sink.Options{ApplyTimeout: 100 * time.Millisecond})
	t.Cleanup(func() { h.Stop(time.Second) })
	return h
}

// The stall the sinks get, and the heartbeat sends, numbers the syscall
// in the native table: a peer knows no other. A 32-bit thread stuck in
// read is ia32 number 3, which is close on amd64.
func TestStallNumberIsNative(t *testing.T) {
	p := &publisher{deadline: func(time.Time, *judged) time.Time { return time.Time{} }, pid: func() int { return 1 }}
	read, _ := tracker.SyscallNr("read")
	const ia32Read = 3
	for _, c := range []struct {
		what   string
		thread tracker.Thread
		want   int
	}{
		{"native read", tracker.Thread{TID: 2, InSyscall: true, Nr: read, Syscall: "read"}, read},
		{"ia32 read", tracker.Thread{TID: 2, InSyscall: true, Nr: ia32Read, ABI: tracker.ABICompat, Syscall: "read"}, read},
		{"ia32 call without a native one", tracker.Thread{TID: 2, InSyscall: true, Nr: 99, ABI: tracker.ABICompat, Syscall: "statfs64"}, -1},
		{"kernel worker", tracker.Thread{TID: 2, Nr: -1}, -1},
	} {
		v := p.judgedVerdict(sink.Stalled, &judged{thread: c.thread}, time.Unix(1000, 0))
		if v.Stall == nil || v.Stall.Nr != c.want {
			t.Errorf("%s: stall %+v, want number %d", c.what, v.Stall, c.want)
		}
	}
}
