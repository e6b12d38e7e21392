package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/stallmon/stallmon/heartbeat"
	"github.com/stallmon/stallmon/internal/event"
	"github.com/stallmon/stallmon/internal/nodefence"
)

// fakeFence records what the agent asks of a node fencer; a watchdog
// disarms on Close only if Fence was never called.
type fakeFence struct {
	fenceOnce sync.Once
	fenced    chan struct{}
}

var _ nodefence.Fencer = (*fakeFence)(nil)

func newFakeFence() *fakeFence      { return &fakeFence{fenced: make(chan struct{})} }
func (f *fakeFence) Feed() error    { return nil }
func (f *fakeFence) Fence() error   { f.fenceOnce.Do(func() { close(f.fenced) }); return nil }
func (f *fakeFence) Close() error   { return nil }
func (f *fakeFence) String() string { return "fake" }
func (f *fakeFence) wasFenced() bool {
	select {
	case <-f.fenced:
		return true
	default:
		return false
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

var errInjectedKill = errors.New("injected kill failure")

type killRun struct {
	a      *Agent
	fence  *fakeFence
	rec    *recorder
	logs   *syncBuffer
	cancel context.CancelFunc
	done   chan Outcome
}

// startKillRun watches a workload hung in a userfaultfd read past its
// kill_after, with a fake node fence and kill standing in for the
// tracker's Kill.
func startKillRun(t *testing.T, kill func(mon func(unix.Signal) error) func(unix.Signal) error) killRun {
	t.Helper()
	w, mon, table := watchHang(t, 100*time.Millisecond, 400*time.Millisecond)
	r := killRun{fence: newFakeFence(), rec: &recorder{got: make(chan heartbeat.Packet, 1)}, logs: &syncBuffer{}, done: make(chan Outcome, 1)}
	a, err := New(mon, Config{PollInterval: 20 * time.Millisecond, Table: table, Kill: true, KillGrace: 500 * time.Millisecond,
		NodeFence: r.fence, Logger: slog.New(slog.NewJSONHandler(r.logs, nil)),
		Heartbeat: &HeartbeatConfig{Sender: r.rec, Interval: 50 * time.Millisecond, NodeID: "n"}})
	if err != nil {
		t.Fatal(err)
	}
	a.kill = kill(a.kill)
	r.a = a
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go func() {
		o, err := a.Run(ctx)
		if err != nil {
			t.Errorf("Run: %v", err)
		}
		r.done <- o
	}()
	t.Cleanup(cancel)
	if _, err := w.Do("uffd-hang"); err != nil {
		t.Fatal(err)
	}
	return r
}

// A kill that fails while the target lives on is judged as an unkillable
// target: the grace is waited out, the unkillable report names the kill's
// error, the node is fenced (a watchdog fencer is then never disarmed),
// and the agent stays up with the heartbeat off instead of ending as if
// it had killed the target.
func TestFailedKillFencesTheNode(t *testing.T) {
	r := startKillRun(t, func(func(unix.Signal) error) func(unix.Signal) error {
		return func(unix.Signal) error { return fmt.Errorf("sending SIGKILL: %w", errInjectedKill) }
	})
	select {
	case <-r.fence.fenced:
	case o := <-r.done:
		t.Fatalf("Run ended (%v) without fencing the node after a failed kill", o)
	case <-time.After(20 * time.Second):
		t.Fatal("node not fenced 20s after the stall began")
	}
	fencedAt := time.Now()
	logs := r.logs.String()
	if !strings.Contains(logs, `"msg":"`+event.Unkillable+`"`) || !strings.Contains(logs, `"kill_err":"fencing target: sending SIGKILL: injected kill failure"`) {
		t.Errorf("no unkillable event naming the kill's error in:\n%s", logs)
	}
	if !r.a.Stats().Unkillable {
		t.Error("stats: unkillable false after a failed kill")
	}
	// The agent goes on waiting for the target, heartbeat off: neither
	// ALIVE nor FENCED may go out while it lives.
	select {
	case o := <-r.done:
		t.Fatalf("Run ended (%v) while the target still lives", o)
	case <-time.After(5 * r.a.cfg.PollInterval):
	}
	for _, p := range r.rec.packets() {
		if p.State == heartbeat.StateFenced || (p.State == heartbeat.StateAlive && time.Unix(0, p.SendTime).After(fencedAt)) {
			t.Errorf("%v sent after the failed kill", p.State)
		}
	}
	r.cancel()
	if o := <-r.done; o != Detached {
		t.Errorf("Run = %v after its stop, want Detached (the target was never killed)", o)
	}
}

// The legitimate ends of a fence never take the node down: a kill that
// works, and a kill that reports an error although the target died of it
// within the grace.
func TestKilledTargetDoesNotFenceTheNode(t *testing.T) {
	for name, kill := range map[string]func(func(unix.Signal) error) func(unix.Signal) error{
		"kill succeeds": func(k func(unix.Signal) error) func(unix.Signal) error { return k },
		"kill errs, target dies": func(k func(unix.Signal) error) func(unix.Signal) error {
			return func(sig unix.Signal) error { return errors.Join(k(sig), errInjectedKill) }
		},
	} {
		t.Run(name, func(t *testing.T) {
			r := startKillRun(t, kill)
			var o Outcome
			select {
			case o = <-r.done:
			case <-time.After(20 * time.Second):
				t.Fatal("Run did not end 20s after the stall began")
			}
			if o != TargetKilled {
				t.Errorf("Run = %v, want TargetKilled", o)
			}
			if r.fence.wasFenced() {
				t.Error("node fenced although the target died within the kill grace")
			}
			if strings.Contains(r.logs.String(), `"msg":"`+event.Unkillable+`"`) || r.a.Stats().Unkillable {
				t.Errorf("unkillable reported for a target that died:\n%s", r.logs.String())
			}
		})
	}
}
