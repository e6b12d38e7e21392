package peer

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// waitStats polls the listener's counters until ok holds.
func waitStats(t *testing.T, h *harness, what string, ok func(Stats) bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !ok(h.l.Stats()) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 10s; stats %+v", what, h.l.Stats())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A listener restarted on its state file keeps what the last run knew:
// a replay of a packet that run accepted is refused, a node it saw alive
// and that stays silent is failed over a timeout after the restart, a
// node it failed over is not failed over again, and that incarnation's
// ALIVE is still dropped.
func TestStateFileSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "listen.state")
	cfg := ListenerConfig{Detector: Config{Timeout: time.Hour}, StateFile: path}
	h := startListener(t, cfg)
	a2 := marshal(t, pkt("a", alive, 5, 2), nil)
	h.src.ch <- marshal(t, pkt("a", alive, 5, 1), nil)
	h.expect(t, "a", Unknown, Alive, false)
	h.src.ch <- a2
	h.src.ch <- marshal(t, pkt("a", alive, 5, 3), nil)
	h.src.ch <- marshal(t, pkt("b", alive, 8, 1), nil)
	h.expect(t, "b", Unknown, Alive, false)
	h.src.ch <- marshal(t, pkt("b", stalled, 8, 2), nil)
	h.expect(t, "b", Alive, Stalled, true)
	// Saved while it runs, not only at the end: a crash loses at most
	// the save in progress.
	waitSaved(t, path, func(recs []stateRecord) bool {
		return len(recs) == 2 && find(recs, "a").Seq == 3 && find(recs, "b").FailedOver
	})
	if err := h.stop(t); err != nil {
		t.Fatal(err)
	}
	if names := dirNames(t, dir); strings.Join(names, " ") != "listen.state listen.state.lock" {
		t.Fatalf("files beside the state file after saves: %v", names)
	}

	cfg.Detector.Timeout = 50 * time.Millisecond
	h = startListener(t, cfg)
	h.src.ch <- a2
	h.src.ch <- marshal(t, pkt("b", alive, 8, 3), nil)
	waitStats(t, h, "replay and after-failover refused", func(s Stats) bool {
		return s.Rejected["replay"] == 1 && s.Rejected["after_failover"] == 1
	})
	h.clock.Advance(time.Minute)
	ev := h.expect(t, "a", Alive, Dead, true)
	if ev.Incarnation != 5 || ev.Seq != 3 {
		t.Fatalf("restored node's death: %+v, want incarnation 5 seq 3", ev)
	}
	h.expect(t, "b", Stalled, Dead, false)
}

// A bad state file stops the listener from starting, with an error that
// names the file and wraps ErrStateFile; a missing one is a first start.
func TestStateFileRefused(t *testing.T) {
	dir := t.TempDir()
	good := `{"format":"stallmon-listener-state","version":1,"nodes":[{"node":"a","state":"alive","incarnation":1,"seq":2}]}`
	cases := map[string]string{
		"empty":      "",
		"truncated":  good[:len(good)-10],
		"not json":   "garbage\n",
		"other json": `{"nodes":[]}`,
		"version":    strings.Replace(good, `"version":1`, `"version":2`, 1),
		"state":      strings.Replace(good, `"alive"`, `"unknown"`, 1),
		"node id":    strings.Replace(good, `"a"`, `"a\u0007"`, 1),
		"twice":      strings.Replace(good, `]}`, `,{"node":"a","state":"dead"}]}`, 1),
	}
	for name, content := range cases {
		path := filepath.Join(dir, strings.ReplaceAll(name, " ", "-"))
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := NewListener(newChanSource(), ListenerConfig{StateFile: path})
		if !errors.Is(err, ErrStateFile) || !strings.Contains(err.Error(), path) {
			t.Errorf("%s: NewListener = %v, want ErrStateFile naming %s", name, err, path)
		}
	}
	// A directory where the file should be cannot be read.
	if _, err := NewListener(newChanSource(), ListenerConfig{StateFile: dir}); !errors.Is(err, ErrStateFile) {
		t.Errorf("a directory: NewListener = %v, want ErrStateFile", err)
	}
	missingDir := filepath.Join(dir, "no", "such")
	if _, err := NewListener(newChanSource(), ListenerConfig{StateFile: missingDir}); !errors.Is(err, ErrStateFile) {
		t.Errorf("a missing directory: NewListener = %v, want ErrStateFile", err)
	}
	fresh := filepath.Join(dir, "fresh")
	if _, err := NewListener(newChanSource(), ListenerConfig{StateFile: fresh}); err != nil {
		t.Errorf("a missing file: NewListener = %v, want a first start", err)
	}
	if _, err := parseState([]byte(good), DefaultMaxNodes); err != nil {
		t.Errorf("the good file is refused: %v", err)
	}
}

func waitSaved(t *testing.T, path string, ok func([]stateRecord) bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		recs, err := loadState(path, DefaultMaxNodes)
		if err == nil && ok(recs) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("state file %s: %+v, %v", path, recs, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func find(recs []stateRecord, node string) stateRecord {
	for _, r := range recs {
		if r.Node == node {
			return r
		}
	}
	return stateRecord{}
}

func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range es {
		out = append(out, e.Name())
	}
	return out
}

// A state file that cannot be written is logged as an error once, and
// detection goes on: stopping would fail every node open. Once it can
// be written again, that is logged too and the file is current.
func TestStateFileSaveFailureKeepsDetecting(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "listen.state")
	h := startListener(t, ListenerConfig{Detector: Config{Timeout: time.Hour}, StateFile: path})
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	h.src.ch <- marshal(t, pkt("a", alive, 1, 1), nil)
	h.expect(t, "a", Unknown, Alive, false)
	h.src.ch <- marshal(t, pkt("a", alive, 1, 2), nil)
	h.src.ch <- marshal(t, pkt("a", stalled, 1, 3), nil)
	h.expect(t, "a", Alive, Stalled, true)
	waitLog(t, h, "level=ERROR msg=listener_state_save_failed")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	h.src.ch <- marshal(t, pkt("a", fenced, 1, 4), nil)
	h.expect(t, "a", Stalled, Fenced, false)
	waitLog(t, h, "msg=listener_state_saved")
	waitSaved(t, path, func(recs []stateRecord) bool { return len(recs) == 1 && recs[0].Seq == 4 })
	if n := strings.Count(h.log.String(), "level=ERROR msg=listener_state_save_failed"); n != 1 {
		t.Fatalf("%d save errors logged at ERROR, want 1 for the streak:\n%s", n, h.log)
	}
}

func waitLog(t *testing.T, h *harness, want string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(h.log.String(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("log lacks %q within 10s:\n%s", want, h.log)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A blind failover (an expected node never heard) survives a restart:
// the restarted listener still takes an incarnation begun before it for
// the one failed over, and drops its ALIVE.
func TestStateFileKeepsBlindFailover(t *testing.T) {
	path := filepath.Join(t.TempDir(), "listen.state")
	cfg := ListenerConfig{Detector: Config{Timeout: 50 * time.Millisecond}, Expect: []string{"b"}, StateFile: path}
	h := startListener(t, cfg)
	waitLog(t, h, "msg=listener_state_loaded") // Run has read its start time
	h.clock.Advance(time.Minute)
	h.expect(t, "b", Unknown, Dead, true)
	waitSaved(t, path, func(recs []stateRecord) bool { return len(recs) == 1 && recs[0].FailedOver })
	if err := h.stop(t); err != nil {
		t.Fatal(err)
	}

	h = startListener(t, cfg)
	h.src.ch <- marshal(t, pkt("b", alive, uint64(t0.Add(-time.Hour).UnixNano()), 1), nil)
	waitStats(t, h, "ALIVE of the incarnation failed over blind", func(s Stats) bool {
		return s.Accepted+s.TotalRejected() == 1
	})
	if s := h.l.Stats(); s.Rejected["after_failover"] != 1 {
		t.Fatalf("after a restart, an incarnation begun before the blind failover: %+v, want its ALIVE dropped as after_failover", s)
	}
}

// saveSpy records every state file the listener writes.
type saveSpy struct {
	mu    sync.Mutex
	saves [][]stateRecord
}

func (s *saveSpy) save(path string, recs []stateRecord) error {
	s.mu.Lock()
	s.saves = append(s.saves, recs)
	s.mu.Unlock()
	return saveState(path, recs)
}

func (s *saveSpy) all() [][]stateRecord {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.saves)
}

// waitKickTaken polls until the saver has taken the listener's last
// request to save, so that it has judged the packet before it.
func waitKickTaken(t *testing.T, h *harness, accepted uint64) {
	t.Helper()
	waitStats(t, h, "packets accepted", func(s Stats) bool { return s.Accepted == accepted })
	deadline := time.Now().Add(10 * time.Second)
	for len(h.l.saveKick) != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the saver did not take its request within 10s")
		}
		time.Sleep(time.Millisecond)
	}
}

// A change of state is saved at once; sequence numbers alone wait for
// the checkpoint (a quarter of the timeout, here 15 minutes), so a
// packet stream costs no save per packet. Counted, not timed.
func TestStateFileSavesChangesNotEachPacket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "listen.state")
	spy := &saveSpy{}
	h := startListenerWith(t, ListenerConfig{Detector: Config{Timeout: time.Hour}, StateFile: path},
		func(l *Listener) { l.save = spy.save })
	h.src.ch <- marshal(t, pkt("a", alive, 5, 1), nil)
	h.expect(t, "a", Unknown, Alive, false)
	waitSaved(t, path, func(recs []stateRecord) bool { return len(recs) == 1 })
	const packets = 40
	for seq := uint64(2); seq <= packets; seq++ {
		h.src.ch <- marshal(t, pkt("a", alive, 5, seq), nil)
		waitKickTaken(t, h, seq)
	}
	if n := len(spy.all()); n != 1 {
		t.Fatalf("%d saves after %d packets of one alive node, want 1 (its arrival)", n, packets)
	}
	h.src.ch <- marshal(t, pkt("a", stalled, 5, packets+1), nil)
	h.expect(t, "a", Alive, Stalled, true)
	waitSaved(t, path, func(recs []stateRecord) bool { return len(recs) == 1 && recs[0].FailedOver })
	h.src.ch <- marshal(t, pkt("a", alive, 6, 1), nil) // a restart: a new incarnation
	h.expect(t, "a", Stalled, Alive, false)
	waitSaved(t, path, func(recs []stateRecord) bool { return len(recs) == 1 && recs[0].Incarnation == 6 })
	if err := h.stop(t); err != nil {
		t.Fatal(err)
	}
	saves := spy.all()
	if len(saves) != 4 {
		t.Fatalf("%d saves, want 4: the arrival, the failover, the restart and the last at stop", len(saves))
	}
	if last := saves[3]; last[0].Incarnation != 6 || last[0].Seq != 1 {
		t.Fatalf("last save %+v, want incarnation 6 seq 1", last)
	}
}

// Sequence numbers alone are saved at the checkpoint, without any
// further packet to prompt it.
func TestStateFileCheckpoint(t *testing.T) {
	path := filepath.Join(t.TempDir(), "listen.state")
	h := startListener(t, ListenerConfig{Detector: Config{Timeout: 200 * time.Millisecond}, StateFile: path})
	h.src.ch <- marshal(t, pkt("a", alive, 5, 1), nil)
	h.expect(t, "a", Unknown, Alive, false)
	h.src.ch <- marshal(t, pkt("a", alive, 5, 2), nil)
	h.src.ch <- marshal(t, pkt("a", alive, 5, 3), nil)
	waitSaved(t, path, func(recs []stateRecord) bool { return len(recs) == 1 && recs[0].Seq == 3 })
}

// A restored takeover deadline is the promise counted again from the
// restart, whatever the wall clock did between the runs: after a step
// forward, the saved wall time would have a hook take over before the
// target's agent had to kill it. Late by the downtime, never early.
func TestStateFileDeadlineSurvivesClockStep(t *testing.T) {
	const promise = time.Minute
	arrival := t0
	saved := stateRecord{
		Node: "a", State: "stalled", Incarnation: 5, Seq: 2, WasAlive: true,
		LastSeen: arrival.UnixNano(), Deadline: arrival.Add(promise).UnixNano(),
	}
	withDuration := saved
	withDuration.TakeoverAfterArrival = int64(promise)
	cases := map[string]struct {
		rec  stateRecord
		step time.Duration // of the wall clock between the runs
	}{
		"forward":           {withDuration, time.Hour},
		"back":              {withDuration, -time.Hour},
		"old file, forward": {saved, time.Hour},
	}
	for name, c := range cases {
		// Stalled is no failover with --failover-on=fenced: the silence
		// after it is, and hands the hook the promise.
		d, err := NewDetector(Config{Timeout: testTimeout, FailoverOn: FailoverOnFenced})
		if err != nil {
			t.Fatal(err)
		}
		restart := arrival.Add(time.Second + c.step)
		if err := d.restore([]stateRecord{c.rec}, restart); err != nil {
			t.Fatal(err)
		}
		evs := d.Tick(restart.Add(testTimeout))
		if len(evs) != 1 || !evs[0].Failover {
			t.Fatalf("%s: %+v, want a failover on silence", name, evs)
		}
		if want := restart.Add(promise); !evs[0].TakeoverDeadline.Equal(want) {
			t.Errorf("%s: takeover deadline %v, want the restart plus the promise, %v",
				name, evs[0].TakeoverDeadline, want)
		}
	}
	// And the duration is what a save keeps.
	d, err := NewDetector(Config{Timeout: testTimeout})
	if err != nil {
		t.Fatal(err)
	}
	p := pkt("a", stalled, 5, 1)
	p.SendTime = arrival.UnixNano()
	p.TakeoverDeadline = arrival.Add(promise).UnixNano()
	if _, _, err := d.Observe(*p, arrival); err != nil {
		t.Fatal(err)
	}
	if recs := d.records(); len(recs) != 1 || recs[0].TakeoverAfterArrival != int64(promise) {
		t.Fatalf("saved %+v, want takeover_after_arrival_ns %d", recs, promise)
	}
}

// A state file on a hung file system does not keep the listener from
// stopping: the last save is waited for min(timeout, 5s), then given up
// with an event.
func TestStateFileHungDiskStillStops(t *testing.T) {
	path := filepath.Join(t.TempDir(), "listen.state")
	hung := make(chan struct{})
	entered := make(chan struct{}, 1)
	h := startListenerWith(t, ListenerConfig{Detector: Config{Timeout: 100 * time.Millisecond}, StateFile: path},
		func(l *Listener) {
			l.save = func(string, []stateRecord) error {
				select {
				case entered <- struct{}{}:
				default:
				}
				<-hung // a write that never returns
				return nil
			}
		})
	defer close(hung)
	h.src.ch <- marshal(t, pkt("a", alive, 5, 1), nil)
	h.expect(t, "a", Unknown, Alive, false)
	select {
	case <-entered:
	case <-time.After(10 * time.Second):
		t.Fatal("no save began within 10s")
	}
	if err := h.stop(t); err != nil { // fails the test if Run does not return within 10s
		t.Fatal(err)
	}
	waitLog(t, h, "level=ERROR msg=listener_state_abandoned")
}

// The state file is locked by NewListener itself, so a program that
// imports peer cannot run two listeners on one file either; the lock is
// released by Close, or once Run's last save ends.
func TestStateFileLocked(t *testing.T) {
	path := filepath.Join(t.TempDir(), "listen.state")
	cfg := ListenerConfig{StateFile: path}
	l, err := NewListener(newChanSource(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewListener(newChanSource(), cfg); !errors.Is(err, ErrStateFileLocked) || !strings.Contains(err.Error(), path) {
		t.Fatalf("a second listener on the file: %v, want ErrStateFileLocked naming it", err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	h := startListener(t, cfg)
	waitLog(t, h, "msg=listener_state_loaded")
	if _, err := NewListener(newChanSource(), cfg); !errors.Is(err, ErrStateFileLocked) {
		t.Fatalf("a second listener beside a running one: %v, want ErrStateFileLocked", err)
	}
	if err := h.stop(t); err != nil {
		t.Fatal(err)
	}
	l, err = NewListener(newChanSource(), cfg)
	if err != nil {
		t.Fatalf("after Run returned: %v, want the lock released", err)
	}
	l.Close()
}

// A crash between a save's temporary file and its rename leaves the
// temporary file; the next start removes it, and only such files.
func TestStateFileRemovesCrashedSaves(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "listen.state")
	for _, name := range []string{"listen.state", ".listen.state.123456", ".listen.state.9", ".listen.state.notours", "other"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(`{"format":"stallmon-listener-state","version":1,"nodes":[]}`), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	l, err := NewListener(newChanSource(), ListenerConfig{StateFile: path})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	got := strings.Join(dirNames(t, dir), " ")
	if want := ".listen.state.notours listen.state listen.state.lock other"; got != want {
		t.Fatalf("files after a start: %q, want %q", got, want)
	}
}
