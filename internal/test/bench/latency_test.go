package bench

import (
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/stallmon/stallmon/heartbeat"
	"github.com/stallmon/stallmon/internal/event"
	"github.com/stallmon/stallmon/internal/testutil/fusehang"
	"github.com/stallmon/stallmon/internal/testutil/harness"
	"github.com/stallmon/stallmon/internal/testutil/workloadtest"
	"github.com/stallmon/stallmon/internal/workload"
)

// runLatency measures, for each tracker, how long a real hang takes to be
// seen: a read(2) of a FUSE file whose server does not answer, under
// `stallmon attach --budget B --no-kill --late-return resume`, from the
// hang to the stall event and to the last ALIVE heartbeat a receiver saw
// before STALLED. The hang's time is taken before the read is asked for,
// so both figures are upper bounds. Each trial starts at a random phase of
// the heartbeat, then the read is released and the agent heard ALIVE
// again before the next.
func runLatency(t *testing.T, cfg config, tab *Table) {
	for _, tr := range Trackers {
		measureLatency(t, cfg, tr, tab)
	}
}

func measureLatency(t *testing.T, cfg config, tr Tracker, tab *Table) {
	c := harness.NewCluster(t)
	w := workloadtest.Start(t)
	node := "bench-latency-" + tr.Name
	a := startAgent(t, tr, c, node, "--pid", strconv.Itoa(w.PID), "--budget", cfg.budget.String(), "--no-kill",
		"--late-return", "resume", "--poll-interval", cfg.pollInterval.String(), "--interval", cfg.heartbeatInterval.String())
	c.WaitPacket("first ALIVE", 10*time.Second, func(p heartbeat.Packet) bool { return p.NodeID == node && p.State == heartbeat.StateAlive })

	bound := cfg.budget + cfg.pollInterval + cfg.heartbeatInterval
	goal := tab.Add(&Row{Key: LatencyKey(tr.Name, LatencyGoal, 99), Bench: "detection latency goal", Unit: Millis,
		Case:    fmt.Sprintf("budget %v + poll %v + heartbeat %v", cfg.budget, cfg.pollInterval, cfg.heartbeatInterval),
		Samples: []float64{ms(bound)}, Setting: true})
	var rows []*Row
	for _, m := range []struct{ measure, what string }{{LatencyStall, "hang to stall event"}, {LatencyLastAlive, "hang to last ALIVE received"}} {
		for _, pct := range []int{50, 99} {
			rows = append(rows, tab.Add(&Row{Key: LatencyKey(tr.Name, m.measure, pct), Bench: fmt.Sprintf("%s, p%d", m.what, pct),
				Case: fmt.Sprintf("stallmon (%s), FUSE read, budget %v", tr.Name, cfg.budget), Unit: Millis, Pct: float64(pct), Base: goal}))
		}
	}
	for trial := range cfg.latencyTrials {
		toStall, toLastAlive := hangOnce(t, cfg, c, a, w, node)
		rows[0].Samples = append(rows[0].Samples, ms(toStall))
		rows[1].Samples = append(rows[1].Samples, ms(toStall))
		rows[2].Samples = append(rows[2].Samples, ms(toLastAlive))
		rows[3].Samples = append(rows[3].Samples, ms(toLastAlive))
		t.Logf("latency trial %d of %d (%s): hang to stall %v, to last ALIVE %v", trial+1, cfg.latencyTrials, tr.Name,
			toStall.Round(time.Millisecond), toLastAlive.Round(time.Millisecond))
	}
	stopAgent(t, a)
}

// hangOnce hangs a read of workload w, waits for the agent to report it and to go back to
// ALIVE once it is released, and returns how long after the hang the
// stall event came and the last ALIVE arrived.
func hangOnce(t *testing.T, cfg config, c *harness.Cluster, a *harness.Proc, w *workload.Proc, node string) (toStall, toLastAlive time.Duration) {
	t.Helper()
	// Release is for good: one file system per trial.
	hung := fusehang.Mount(t, fusehang.Options{HonourInterrupts: true})
	ours := func(p heartbeat.Packet) bool { return p.NodeID == node }
	var seq uint64
	for _, tp := range c.Seen() {
		if ours(tp.P) {
			seq = max(seq, tp.P.Seq)
		}
	}
	// A random phase against the heartbeat and the polls, so that the
	// trials sample every phase; nothing to synchronise with.
	time.Sleep(rand.N(cfg.heartbeatInterval))
	hang := time.Now()
	r, err := w.Do("read-file " + hung.File)
	if err != nil {
		t.Fatal(err)
	}
	tid, err := r.Int("tid")
	if err != nil {
		t.Fatal(err)
	}
	stall := a.Events.Next(event.Stall, cfg.budget+30*time.Second)
	if got, _ := stall["tid"].(float64); int(got) != tid {
		t.Fatalf("stall of thread %v, not of the hung reader %d: %v", stall["tid"], tid, stall)
	}
	stalled := c.WaitPacket("STALLED", 10*time.Second, func(p heartbeat.Packet) bool {
		return ours(p) && p.State == heartbeat.StateStalled && p.Seq > seq
	})
	var lastAlive time.Time
	for _, tp := range c.Seen() {
		if ours(tp.P) && tp.P.State == heartbeat.StateAlive && tp.P.Seq < stalled.Seq && tp.At.After(lastAlive) {
			lastAlive = tp.At
		}
	}
	if lastAlive.IsZero() {
		t.Fatalf("no ALIVE of %s before its STALLED (seq %d)", node, stalled.Seq)
	}
	hung.Release()
	a.Events.Next(event.StallCleared, 30*time.Second)
	c.WaitPacket("ALIVE after the release", 10*time.Second, func(p heartbeat.Packet) bool {
		return ours(p) && p.State == heartbeat.StateAlive && p.Seq > stalled.Seq
	})
	// The reader closes its file and exits once its read returned; the
	// workload refuses a new read-file until then.
	err = waitFor("the released reader gone", 10*time.Second, func() (bool, error) {
		_, err := os.Stat(fmt.Sprintf("/proc/%d/task/%d", w.PID, tid))
		return errors.Is(err, fs.ErrNotExist), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return harness.EventTime(t, stall).Sub(hang), lastAlive.Sub(hang)
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
