package agent

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/stallmon/stallmon/heartbeat"
	"github.com/stallmon/stallmon/internal/event"
	"github.com/stallmon/stallmon/internal/testutil/linktamper"
)

// A root process that puts another program behind the tracker's snapshot
// iterator (BPF_LINK_UPDATE on the link taken by id) turns the heartbeat
// off: no ALIVE after it, tracker_tampered logged once, and the gate
// stays blind after the tracker's own program is put back, with the agent
// still running.
func TestTrackerTamperingStopsHeartbeat(t *testing.T) {
	// The JSON handler serialises the writes; the buffer is read once
	// Run has returned.
	var logs bytes.Buffer
	b := startBeating(t, slog.New(slog.NewJSONHandler(&logs, nil)))
	a := b.a

	// The outside actor: it finds the iterator link among this process's
	// fds, as bpftool does, and takes it by id.
	held, err := linktamper.Held(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	iters := linktamper.Of(held, "iter")
	if len(iters) != 1 {
		t.Fatalf("this process holds iterator links %+v, want the tracker's only", iters)
	}
	fd, err := linktamper.Open(iters[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	decoy, err := linktamper.DecoyTaskIterator()
	if err != nil {
		t.Fatal(err)
	}
	defer decoy.Close()
	tampered := time.Now()
	if err := linktamper.Replace(fd, decoy); err != nil {
		t.Fatalf("replacing the iterator's program: %v", err)
	}
	waitStats(t, a, "the tampering to be seen", func(st Stats) bool { return st.Tampered })
	seen := time.Since(tampered)
	// The gate is distrusted before the event is counted.
	st := a.Stats()
	if st.Gate != gateBlind.String() {
		t.Fatalf("gate %s once tampering was seen, want blind", st.Gate)
	}

	// Putting the tracker's program back changes nothing: ten more polls.
	orig, err := ebpf.NewProgramFromID(ebpf.ProgramID(iters[0].ProgID))
	if err != nil {
		t.Fatal(err)
	}
	defer orig.Close()
	if err := linktamper.Replace(fd, orig); err != nil {
		t.Fatalf("restoring the iterator's program: %v", err)
	}
	restoredAt := a.Stats().PollFailures
	waitStats(t, a, "ten polls after the restore", func(st Stats) bool { return st.PollFailures >= restoredAt+10 })
	if after := a.Stats(); after.Gate != gateBlind.String() || after.Polls != st.Polls {
		t.Fatalf("after the restore: gate %s and %d successful polls, want blind and still %d", after.Gate, after.Polls, st.Polls)
	}
	if h := a.Health(); h.Ready || !strings.Contains(h.Reason, "changed from outside") {
		t.Fatalf("health %+v, want not ready, saying the tracker was changed from outside", h)
	}
	b.running(t)
	b.stop()
	// Stopped blind, it ends in silence: LEAVING would say the node goes
	// in good order, and peers never fail over a node that left.
	for _, p := range b.rec.packets() {
		if p.State == heartbeat.StateLeaving {
			t.Errorf("LEAVING from an agent that could not vouch for its target: %+v", p)
		}
	}

	lastAlive := b.aliveUntil(t, tampered)
	t.Logf("tampering seen after %v; last ALIVE %v after it", seen, lastAlive.Sub(tampered))
	out := logs.Bytes()
	for ev, want := range map[string]int{event.TrackerTampered: 1, event.HeartbeatStopped: 1, event.PollRecovered: 0, event.HeartbeatResumed: 0,
		event.StopSilent: 1} {
		if n := countEvents(t, out, ev); n != want {
			t.Errorf("%d %s events, want %d; log:\n%s", n, ev, want, out)
		}
	}
	checkTamperEvent(t, out, iters[0].ID)
}

// checkTamperEvent checks that the tracker_tampered event names the link.
func checkTamperEvent(t *testing.T, logs []byte, linkID uint32) {
	t.Helper()
	for line := range bytes.Lines(logs) {
		var ev struct {
			Msg, Link, Change string
			LinkID            uint32 `json:"link_id"`
		}
		if err := json.Unmarshal(line, &ev); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if ev.Msg != event.TrackerTampered {
			continue
		}
		if ev.Link != "task iterator" || ev.LinkID != linkID || !strings.HasPrefix(ev.Change, "runs program ") {
			t.Errorf("%s event %s, want the task iterator, link %d, running another program", event.TrackerTampered, line, linkID)
		}
		return
	}
	t.Errorf("no %s event", event.TrackerTampered)
}

// waitStats polls the agent's stats until cond holds, for 10 s at most.
func waitStats(t *testing.T, a *Agent, what string, cond func(Stats) bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond(a.Stats()) {
		if time.Now().After(deadline) {
			t.Fatalf("waited 10s for %s; stats %+v", what, a.Stats())
		}
		time.Sleep(5 * time.Millisecond)
	}
}
