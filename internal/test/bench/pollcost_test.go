package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

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
// (from /proc). Every figure is compared with the first case's; with a
// baseline build, each case is also run with it, the two builds in turn
// on targets made alike, and each figure is compared with the baseline's
// instead. It returns the stall events this build's agents reported, all
// false (no target hangs), and how long they watched.
func runPollCost(t *testing.T, cfg config, tab *Table, baseline *Build) (stalls int, seconds float64) {
	bin := ctarget.Build(t, "idlethreads")
	c := harness.NewCluster(t)
	// The agents run one at a time in this cgroup, which counts their CPU.
	cg := cgrouptest.New(t)
	label := ""
	if baseline != nil {
		label = baseline.Label
	}
	for _, tr := range Trackers {
		var first [3]*Row
		for i, pc := range cfg.pollCases {
			rows := AddPollRows(tab, tr.Name, pc, first, label)
			if i == 0 {
				first = rows.Current
			}
			type run struct {
				stallmon string
				rows     [3]*Row
				current  bool // this build's, not the baseline's
			}
			runs := []run{{stallmonBin, rows.Current, true}}
			if baseline != nil {
				runs = append(runs, run{baseline.Bin, rows.Baseline, false})
				// Neither build always goes first: whatever the one
				// before leaves behind (threads being freed, a warm
				// cache) falls on each in turn.
				if i%2 == 1 {
					runs[0], runs[1] = runs[1], runs[0]
				}
			}
			for _, r := range runs {
				s, secs := measurePolls(t, cfg, tr, c, cg.Path, bin, r.stallmon, pc, r.rows)
				if r.current {
					stalls += s
					seconds += secs
				}
				t.Logf("poll cost, %s: %s ms/poll, %s%% CPU, %s MB", r.rows[0].Case,
					Format(r.rows[0].Figure()), Format(r.rows[1].Figure()), Format(r.rows[2].Figure()))
			}
		}
	}
	return stalls, seconds
}

// measurePolls runs one agent, the stallmon binary at stallmon, on one
// target and fills rows (poll time, CPU, RSS) with a sample per window.
func measurePolls(t *testing.T, cfg config, tr Tracker, c *harness.Cluster, cg, bin, stallmon string, pc PollCase, rows [3]*Row) (stalls int, seconds float64) {
	targets := make([]*workload.Proc, pc.Processes())
	pids := make([]int, len(targets))
	for i := range targets {
		targets[i] = startProtocol(t, bin)
		defer targets[i].Stop()
		pids[i] = targets[i].PID
	}
	if pc.Host > 0 {
		raisePidMax(t, pc.Host)
		for left := pc.Host; left > 0; left -= hostPerProcess {
			host := startProtocol(t, bin)
			defer host.Stop()
			spawnThreads(t, host, min(left, hostPerProcess), 0)
		}
	}
	fifo := ""
	if pc.Bounded {
		fifo = filepath.Join(t.TempDir(), "fifo")
		if err := unix.Mkfifo(fifo, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if pc.Before {
		makeThreads(t, targets, pc, fifo)
	}
	started := time.Now()
	args := append(scopeArgs(t, pc, pids), "--metrics-addr", "127.0.0.1:0")
	args = append(args, pc.AgentArgs()...)
	a := startAgentBin(t, stallmon, tr, c, fmt.Sprintf("bench-poll-%d", pids[0]), args...)
	addr := metricsAddr(t, a)
	if loaded := sawEvent(a, event.BPFMinimalLoaded); loaded != pc.Minimal {
		t.Fatalf("%s: %s logged: %t, want %t: the row would measure the other BPF object", rows[0].Case, event.BPFMinimalLoaded, loaded, pc.Minimal)
	}
	if err := (cgroup.Dir{Path: cg}).Add(a.Cmd.Process.Pid); err != nil {
		t.Fatal(err)
	}
	if !pc.Before {
		makeThreads(t, targets, pc, fifo)
	}
	if pc.Bounded {
		if err := waitBounded(addr, pc.Threads, time.Minute); err != nil {
			t.Fatalf("%s: %v", rows[0].Case, err)
		}
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

// makeThreads gives the targets the threads of pc, shared evenly: the
// idle ones wait in futex, or, for a Bounded case (one target), in openat
// of fifo.
func makeThreads(t *testing.T, targets []*workload.Proc, pc PollCase, fifo string) {
	t.Helper()
	if !pc.Bounded {
		n := len(targets)
		for i, p := range targets {
			busy := pc.Busy() / n
			if i < pc.Busy()%n {
				busy++
			}
			spawnThreads(t, p, pc.Threads/n, busy)
		}
		return
	}
	if len(targets) != 1 {
		t.Fatalf("%s: a bounded case has one target", pc)
	}
	if _, err := targets[0].DoTimeout(fmt.Sprintf("fifo %d %s", pc.Threads, fifo), spawnTimeout); err != nil {
		t.Fatal(err)
	}
	spawnThreads(t, targets[0], 0, pc.Busy())
}

// waitBounded waits until the agent at addr sees n threads in openat,
// judged by a bounded rule (so never left out as quiet) of
// BoundedBudget: what a Bounded case claims to measure.
func waitBounded(addr string, n int, timeout time.Duration) error {
	want, err := time.ParseDuration(BoundedBudget)
	if err != nil {
		return err
	}
	deadline := time.Now().Add(timeout)
	for {
		s, err := scrapeSyscall(context.Background(), addr, "openat")
		if err != nil {
			return err
		}
		if int(s.InFlight) == n && s.Budget == want {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("after %v the agent sees %v threads in openat with a budget of %v, want %d with %v",
				timeout, s.InFlight, s.Budget, n, want)
		}
		time.Sleep(scrapeEvery)
	}
}

func spawnThreads(t *testing.T, p *workload.Proc, idle, busy int) {
	t.Helper()
	if _, err := p.DoTimeout(fmt.Sprintf("spawn %d %d", idle, busy), spawnTimeout); err != nil {
		t.Fatal(err)
	}
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

// sawEvent tells whether the agent logged msg before it attached.
func sawEvent(p *harness.Proc, msg string) bool {
	for _, ev := range p.Events.All() {
		if ev["msg"] == msg {
			return true
		}
	}
	return false
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

// hostPerProcess bounds the threads of one process elsewhere on the host:
// each thread's stack is two mappings, and vm.max_map_count is 65,530.
const hostPerProcess = 10000

// raisePidMax makes room for n more threads than the host runs now, for
// the test's duration, if pid_max leaves less than twice that free. Only
// when it must: make test runs the smoke run beside other packages'
// tests, and a process given a pid above pid_max while it was raised
// stays above it once it is restored (--tree then refuses it at attach).
func raisePidMax(t *testing.T, n int) {
	t.Helper()
	const file = "/proc/sys/kernel/pid_max"
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	old, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatalf("%s: %q", file, b)
	}
	need := hostTasks(t) + n
	if 2*need <= old {
		return
	}
	want := 4 * need
	if err := os.WriteFile(file, []byte(strconv.Itoa(want)), 0); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := os.WriteFile(file, []byte(strconv.Itoa(old)), 0); err != nil {
			t.Errorf("restoring %s: %v", file, err)
		}
	})
}

// hostTasks is how many threads the host runs: /proc/loadavg's
// running/total field.
func hostTasks(t *testing.T) int {
	t.Helper()
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(b))
	if len(f) < 4 {
		t.Fatalf("/proc/loadavg: %q", b)
	}
	_, total, _ := strings.Cut(f[3], "/")
	n, err := strconv.Atoi(total)
	if err != nil {
		t.Fatalf("/proc/loadavg: %q: %v", b, err)
	}
	return n
}

// scopeArgs are the flags that watch the processes pids as pc says: the
// first alone with --pid or --tree, all of them in a cgroup of their own
// (removed when the test ends) for ScopeCgroup.
func scopeArgs(t *testing.T, pc PollCase, pids []int) []string {
	t.Helper()
	if len(pids) > 1 && pc.Scope != ScopeCgroup {
		t.Fatalf("%s: several processes are watched as a cgroup only", pc)
	}
	pid := pids[0]
	switch pc.Scope {
	case ScopeTree:
		return []string{"--pid", fmt.Sprint(pid), "--tree"}
	case ScopeCgroup:
		root, err := cgroup.Root()
		if err != nil {
			t.Fatal(err)
		}
		d, err := cgroup.Mkdir(root, fmt.Sprintf("stallmon-bench-target-%d", pid))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if pids, err := d.Procs(); err == nil {
				for _, p := range pids {
					(cgroup.Dir{Path: root}).Add(p)
				}
			}
			if err := d.Remove(); err != nil {
				t.Errorf("removing the target's cgroup: %v", err)
			}
		})
		for _, pid := range pids {
			if err := d.Add(pid); err != nil {
				t.Fatal(err)
			}
		}
		return []string{"--cgroup", d.Path}
	}
	return []string{"--pid", fmt.Sprint(pid)}
}
