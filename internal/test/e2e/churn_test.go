package e2e

import (
	"io"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/stallmon/stallmon/internal/testutil/ctarget"
	"github.com/stallmon/stallmon/internal/testutil/fusehang"
	"github.com/stallmon/stallmon/internal/testutil/harness"
	"github.com/stallmon/stallmon/internal/testutil/privtest"
)

// A thread stuck in a read on a hung file system, in a process whose
// threads come and go as fast as they can while threads older than the
// stuck one exit one after the other (ctarget's churn): the task iterator
// is cut short now and then, by the very thread it stands on exiting.
// Every poll must still see the stuck thread: it is reported within its
// budget and two polls, and its stall never clears while it stays stuck.
// A poll that missed it would clear the stall and start it again, its
// time in the state restarted (the sampled tracker's elapsed time too):
// churn could keep a hung thread looking fresh for ever. Run once with
// the read asleep in S (direct I/O) and once in killable D (page cache).
func TestChurnKeepsStuckThreadSeen(t *testing.T) {
	privtest.Require(t)
	fusehang.Require(t)
	bin := ctarget.Build(t, "churn")
	for _, c := range []struct {
		name string
		opts fusehang.Options
	}{
		{"S", fusehang.Options{}},
		{"D", fusehang.Options{PageCache: true}},
	} {
		t.Run(c.name, func(t *testing.T) { churnStuckThread(t, bin, c.opts) })
	}
}

func churnStuckThread(t *testing.T, bin string, opts fusehang.Options) {
	const (
		budget = time.Second
		// Short polls, many passes; one that does not divide the budget,
		// so that the first poll past it comes less than a poll later.
		poll = 60 * time.Millisecond
		// The old threads end one every gap: the churn lasts old*gap
		// from the hang on, the budget and a few seconds of watching.
		old = 12000
		gap = 400 * time.Microsecond
	)
	fs := fusehang.Mount(t, opts)
	p := ctarget.Start(t, bin, strconv.Itoa(old), strconv.Itoa(int(gap/time.Microsecond)), fs.File)
	// Cleanups run last first: the held read is answered before the
	// target is killed and waited for.
	t.Cleanup(fs.Release)
	reader := p.Int(t, "reader")
	agent := startStallmon(t, "attach", "--pid", itoa(p.Cmd.Process.Pid), "--no-heartbeat", "--log-format", "json",
		"--poll-interval", poll.String(), "--budget", budget.String(), "--kill-after", "1h", "--metrics-addr", "127.0.0.1:0")
	addr := agent.Events.Next("metrics_listening", 10*time.Second)["addr"].(string)
	agent.Events.Next("attached", 10*time.Second)

	lag := pollLag(t, addr)
	if _, err := io.WriteString(p.Stdin, "hang\n"); err != nil {
		t.Fatal(err)
	}
	hung := time.Now()
	if _, err := fs.WaitFor("the reader's read", 10*time.Second, func(s fusehang.Stats) bool { return s.Pending > 0 }); err != nil {
		t.Fatal(err)
	}
	isReader := func(ev map[string]any) bool { return ev["tid"] == float64(reader) }
	stall := agent.Events.NextWhere("the reader's stall", 10*time.Second, func(ev map[string]any) bool {
		return ev["msg"] == "stall" && isReader(ev)
	})
	took := harness.EventTime(t, stall).Sub(hung)
	lag = pollLag(t, addr) - lag
	if took > budget+2*poll+lag {
		t.Errorf("stall reported %v after the hang, want within the %v budget and two %v polls (and the polls' lag, %v)",
			took.Round(time.Millisecond), budget, poll, lag.Round(time.Millisecond))
	}

	// Watch until the old threads are all gone.
	end := hung.Add(old * gap)
	if time.Until(end) < 3*time.Second {
		t.Fatalf("the churn ends %v after the stall: too soon to watch it", time.Until(end))
	}
	for time.Now().Before(end) {
		for _, ev := range agent.Events.Drain() {
			if ev["msg"] == "stall_cleared" && isReader(ev) {
				t.Fatalf("the stall of thread %d cleared while it stayed stuck (a poll missed it): %v", reader, ev)
			}
		}
		time.Sleep(poll)
	}
	if st := fs.Stats(); st.Pending == 0 {
		t.Fatalf("the reader's read was answered during the test: %+v", st)
	}
	seen := 0
	for _, ev := range agent.Events.Drain() {
		if ev["msg"] == "stall" && isReader(ev) {
			seen++
		}
		if ev["msg"] == "poll_failed" {
			t.Logf("poll failed: %v", ev)
		}
	}
	if seen != 1 {
		t.Errorf("the reader's stall was reported %d times, want once: its time restarted", seen)
	}
	partial := regexp.MustCompile(`(?m)^stallmon_tracker_partial_walks_total (\d+)$`).FindStringSubmatch(scrape(t, addr))
	if partial == nil {
		t.Fatal("no stallmon_tracker_partial_walks_total in /metrics")
	}
	t.Logf("stall %v after the hang (polls' lag %v); %s passes cut short and taken again during %v of churn",
		took.Round(time.Millisecond), lag.Round(time.Millisecond), partial[1], old*gap)
}
