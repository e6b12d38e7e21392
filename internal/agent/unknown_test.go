package agent

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/stallmon/stallmon/internal/event"
	"github.com/stallmon/stallmon/internal/tracker"
)

// A thread whose syscall entry the tracker could not record makes the
// poll unable to vouch, with the thread named, until a snapshot shows it
// recorded again or gone; each change is logged once. Entries that name
// no thread keep the poll unable to vouch for good.
func TestUnknownThreadsAreLoggedAndBlind(t *testing.T) {
	var logs bytes.Buffer
	a := &Agent{log: slog.New(slog.NewJSONHandler(&logs, nil)), stats: newStatsRecorder(time.Second)}
	t0 := time.Unix(1000, 0)
	lost := func(tid int) tracker.Thread {
		return tracker.Thread{PID: 5, TID: tid, Comm: "worker", Unrecorded: &tracker.Unrecorded{
			Nr: 0, Syscall: "read", For: 300 * time.Millisecond}}
	}
	known := func(tid int) tracker.Thread { return tracker.Thread{PID: 5, TID: tid, Comm: "worker", Tracked: true} }
	snap := func(at time.Duration, unmarked uint64, threads ...tracker.Thread) tracker.Snapshot {
		return tracker.Snapshot{Taken: t0.Add(at), Threads: threads, UnrecordedUnmarked: unmarked}
	}

	steps := []struct {
		snap   tracker.Snapshot
		reason string   // substring; "" wants none
		events []string // logged by this step, in order
	}{
		{snap(0, 0, known(5), known(9)), "", nil},
		{snap(100*time.Millisecond, 0, known(5), lost(9)), "thread 9 (worker) unknown: its entry into read", []string{event.ThreadUnknown}},
		{snap(200*time.Millisecond, 0, known(5), lost(9)), "thread 9 (worker) unknown", nil},
		{snap(300*time.Millisecond, 0, lost(5), lost(9)), "2 threads unknown; thread 5", []string{event.ThreadUnknown}},
		{snap(400*time.Millisecond, 0, known(5), known(9)), "", []string{event.ThreadKnown, event.ThreadKnown}},
		{snap(500*time.Millisecond, 0, known(5), lost(11)), "thread 11", []string{event.ThreadUnknown}},
		{snap(600*time.Millisecond, 0, known(5)), "", []string{event.ThreadKnown}},
		{snap(700*time.Millisecond, 3, known(5)), "3 syscall entries could not be recorded", []string{event.UnrecordedUnmarked}},
		{snap(800*time.Millisecond, 3, known(5)), "3 syscall entries", nil},
	}
	for i, st := range steps {
		logs.Reset()
		got := a.noteUnknown(st.snap)
		if (st.reason == "") != (got == "") || !strings.Contains(got, st.reason) {
			t.Fatalf("step %d: reason %q, want %q", i, got, st.reason)
		}
		var names []string
		var events []map[string]any
		for line := range strings.Lines(logs.String()) {
			var ev map[string]any
			if err := json.Unmarshal([]byte(line), &ev); err != nil {
				t.Fatal(err)
			}
			names = append(names, ev["msg"].(string))
			events = append(events, ev)
		}
		if strings.Join(names, ",") != strings.Join(st.events, ",") {
			t.Fatalf("step %d: logged %v, want %v", i, names, st.events)
		}
		for _, ev := range events {
			switch ev["msg"] {
			case event.ThreadUnknown:
				// Unknown since its first unrecorded entry, 300ms before the snapshot.
				if ev["syscall"] != "read" || ev["unknown_seconds"] != 0.3 || !strings.Contains(ev["reason"].(string), "task storage") {
					t.Errorf("step %d: %v", i, ev)
				}
			case event.ThreadKnown:
				if gone := ev["tid"] == 11.0; ev["exited"] != gone {
					t.Errorf("step %d: %v, want exited=%v", i, ev, gone)
				}
			}
		}
	}
}
