package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stallmon/stallmon/internal/cgroup"
	"github.com/stallmon/stallmon/internal/event"
	"github.com/stallmon/stallmon/internal/testutil/cgrouptest"
	"github.com/stallmon/stallmon/internal/testutil/ctarget"
	"github.com/stallmon/stallmon/internal/testutil/harness"
	"github.com/stallmon/stallmon/internal/workload"
)

// spawnTimeout bounds the making of thousands of threads.
const spawnTimeout = 2 * time.Minute

// runPollCost measures `stallmon attach` at the default poll interval on
// targets of each size of cfg.pollCases: the mean time of a poll (the
// agent's own agent_poll_duration_seconds), the agent's CPU and its RSS
// (from /proc). Every figure is compared with the first case's. It
// returns the stall events the agents reported, all false (no target
// hangs), and how long the agents watched.
func runPollCost(t *testing.T, cfg config, tab *Table) (stalls int, seconds float64) {
	bin := ctarget.Build(t, "idlethreads")
	c := harness.NewCluster(t)
	// The agents run one at a time in this cgroup, which counts their CPU.
	cg := cgrouptest.New(t)
	for _, tr := range Trackers {
		var base [3]*Row
		for i, pc := range cfg.pollCases {
			var rows [3]*Row
			for k, m := range []struct {
				measure, bench string
				unit           Unit
			}{{PollTime, "time per poll", Millis}, {PollCPU, "agent CPU", CorePct}, {PollRSS, "agent RSS", MB}} {
				b := base[k]
				if pc.Senders > 0 {
					// Compared with the same target all idle.
					idle := pc
					idle.Senders = 0
					if r := tab.Row(PollKey(tr.Name, m.measure, idle)); r != nil {
						b = r
					}
				}
				rows[k] = tab.Add(&Row{Key: PollKey(tr.Name, m.measure, pc), Bench: m.bench, Unit: m.unit, Base: b,
					Case: fmt.Sprintf("stallmon (%s), %s", tr.Name, pc)})
			}
			if i == 0 {
				base = rows
			}
			s, secs := measurePolls(t, cfg, tr, c, cg.Path, bin, pc, rows)
			stalls += s
			seconds += secs
			t.Logf("poll cost, %s: %s ms/poll, %s%% CPU, %s MB", rows[0].Case,
				Format(rows[0].Figure()), Format(rows[1].Figure()), Format(rows[2].Figure()))
		}
	}
	return stalls, seconds
}

// measurePolls runs one agent on one target and fills rows (poll time,
// CPU, RSS) with a sample per window.
func measurePolls(t *testing.T, cfg config, tr Tracker, c *harness.Cluster, cg, bin string, pc PollCase, rows [3]*Row) (stalls int, seconds float64) {
	target := startProtocol(t, bin)
	defer target.Stop()
	if pc.Host > 0 {
		host := startProtocol(t, bin)
		defer host.Stop()
		spawnIdle(t, host, pc.Host, 0)
	}
	sendFile := ""
	if pc.Senders > 0 {
		sendFile = senderFile(t)
	}
	if pc.Before {
		spawnThreads(t, target, pc, sendFile)
	}
	started := time.Now()
	a := startAgent(t, tr, c, fmt.Sprintf("bench-poll-%d", target.PID), "--pid", fmt.Sprint(target.PID),
		"--metrics-addr", "127.0.0.1:0")
	addr := metricsAddr(t, a)
	if err := (cgroup.Dir{Path: cg}).Add(a.Cmd.Process.Pid); err != nil {
		t.Fatal(err)
	}
	if !pc.Before {
		spawnThreads(t, target, pc, sendFile)
	}
	// Steady state: two polls that began once every thread was there.
	now, err := scrapePolls(context.Background(), addr)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := waitPolls(addr, now, 3, 5*time.Minute); err != nil {
		t.Fatal(err)
	}
	for w := range cfg.pollWindows {
		poll, cpu, rss, err := pollWindow(addr, cg, a.Cmd.Process.Pid, cfg.pollWindow)
		if err != nil {
			t.Fatalf("%s, window %d: %v", rows[0].Case, w+1, err)
		}
		for k, v := range []float64{poll, cpu, rss} {
			rows[k].Samples = append(rows[k].Samples, v)
		}
	}
	stopAgent(t, a)
	seconds = time.Since(started).Seconds()
	for _, ev := range a.Events.Rest() {
		if ev["msg"] == event.Stall {
			stalls++
			t.Errorf("%s: false stall: %v", rows[0].Case, ev)
		}
	}
	return stalls, seconds
}

// spawnThreads gives idlethreads pc's threads: idle in futex, busy, and
// asleep in sendfile to a client that stopped reading (from path).
func spawnThreads(t *testing.T, p *workload.Proc, pc PollCase, path string) {
	t.Helper()
	spawnIdle(t, p, pc.Threads-pc.Senders, pc.Busy())
	spawnSenders(t, p, pc.Senders, path)
}

func spawnIdle(t *testing.T, p *workload.Proc, idle, busy int) {
	t.Helper()
	if _, err := p.DoTimeout(fmt.Sprintf("spawn %d %d", idle, busy), spawnTimeout); err != nil {
		t.Fatal(err)
	}
}

func spawnSenders(t *testing.T, p *workload.Proc, n int, path string) {
	t.Helper()
	if n == 0 {
		return
	}
	if _, err := p.DoTimeout(fmt.Sprintf("senders %d %s", n, path), spawnTimeout); err != nil {
		t.Fatal(err)
	}
}

// senderFile is the file idlethreads' senders send: over the 64 KiB
// their sockets can hold.
func senderFile(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "sent")
	if err := os.WriteFile(path, make([]byte, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// metricsAddr is where the agent serves its metrics, from the event it
// logged before attached.
func metricsAddr(t *testing.T, p *harness.Proc) string {
	t.Helper()
	for _, ev := range p.Events.All() {
		if addr, ok := ev["addr"].(string); ok && ev["msg"] == event.MetricsListening {
			return addr
		}
	}
	t.Fatalf("no %s event before %s", event.MetricsListening, event.Attached)
	return ""
}

// scrapeEvery spaces the scrapes of an agent's metrics: each costs the
// agent CPU, which the windows measure.
const scrapeEvery = 250 * time.Millisecond

// waitPolls waits until the agent has timed n more polls than it had at
// since, and returns its counters then.
func waitPolls(addr string, since pollStats, n uint64, timeout time.Duration) (pollStats, error) {
	deadline := time.Now().Add(timeout)
	for {
		st, err := scrapePolls(context.Background(), addr)
		if err != nil || st.Observed >= since.Observed+n {
			return st, err
		}
		if time.Now().After(deadline) {
			return st, fmt.Errorf("the agent timed %d polls in %v, want %d", st.Observed-since.Observed, timeout, n)
		}
		time.Sleep(scrapeEvery)
	}
}

// pollWindow watches the agent for d, longer if no poll ended in d (a
// poll may outlast d), and returns its mean poll time in ms, its
// CPU in % of a core (the agent alone in cgroup cg) and its RSS in MB at
// the end.
func pollWindow(addr, cg string, pid int, d time.Duration) (pollMs, cpuPct, rss float64, err error) {
	s0, err := scrapePolls(context.Background(), addr)
	if err != nil {
		return 0, 0, 0, err
	}
	cpu0, err := cgroupCPU(cg)
	if err != nil {
		return 0, 0, 0, err
	}
	t0 := time.Now()
	// The window is the measurement itself: nothing to wait for but time.
	time.Sleep(d)
	s1, err := waitPolls(addr, s0, 1, 5*time.Minute)
	if err != nil {
		return 0, 0, 0, err
	}
	cpu1, err := cgroupCPU(cg)
	if err != nil {
		return 0, 0, 0, err
	}
	elapsed := time.Since(t0)
	if rss, err = rssMB(pid); err != nil {
		return 0, 0, 0, err
	}
	polls := s1.Observed - s0.Observed
	pollMs = float64(s1.Time-s0.Time) / float64(polls) / float64(time.Millisecond)
	cpuPct = float64(cpu1-cpu0) / float64(elapsed) * 100
	return pollMs, cpuPct, rss, nil
}
