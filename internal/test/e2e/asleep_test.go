package e2e

import (
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/stallmon/stallmon/internal/testutil/cgrouptest"
	"github.com/stallmon/stallmon/internal/testutil/ctarget"
	"github.com/stallmon/stallmon/internal/testutil/fusehang"
	"github.com/stallmon/stallmon/internal/testutil/harness"
	"github.com/stallmon/stallmon/internal/testutil/privtest"
)

// Threads asleep in the kernel outside a recorded syscall (issue 18), with
// a 1s budget polled every 100ms: each hang is a stall within the budget
// and two polls (the first poll may come one poll after the sleep began,
// and the budget is over at the first poll past it), and the legitimate
// case beside it is none.
const (
	asleepBudget = time.Second
	asleepPoll   = 100 * time.Millisecond
	// asleepJitter is the slack a loaded 2-CPU machine needs on top, for
	// the agent's timers and the workload's reply reaching the test.
	asleepJitter = 100 * time.Millisecond
)

// watchAsleep starts stallmon attach on pid with the 1s budget.
func watchAsleep(t *testing.T, pid int, flags ...string) *harness.Proc {
	t.Helper()
	agent := startStallmon(t, append([]string{"attach", "--pid", itoa(pid), "--no-heartbeat", "--log-format", "json",
		"--metrics-addr", "", "--poll-interval", asleepPoll.String(), "--budget", asleepBudget.String(), "--kill-after", "1m"}, flags...)...)
	agent.Events.Next("attached", 10*time.Second)
	return agent
}

// stallOf waits for the stall of thread tid and checks it came within the
// budget and two polls of since, when the thread was known to sleep.
func stallOf(t *testing.T, agent *harness.Proc, tid int, since time.Time) map[string]any {
	t.Helper()
	stall := agent.Events.NextWhere(fmt.Sprintf("stall of thread %d", tid), 10*time.Second, func(ev map[string]any) bool {
		return ev["msg"] == "stall" && ev["tid"] == float64(tid)
	})
	after := eventTime(t, stall).Sub(since)
	if limit := asleepBudget + 2*asleepPoll + asleepJitter; after > limit {
		t.Errorf("stall %v after the thread was asleep, want within %v (budget, two polls, jitter)", after, limit)
	}
	t.Logf("stall %v after the thread was asleep: reason %v, state %v, syscall %v, state_seconds %v, elapsed_seconds %v",
		after.Round(time.Millisecond), stall["reason"], stall["state"], stall["syscall"], stall["state_seconds"], stall["elapsed_seconds"])
	return stall
}

// A thread asleep in a page fault that never completes, with no syscall
// around it: a plain load from a userfaultfd page nobody resolves (S,
// handle_userfault) or from an mmap of a FUSE file whose server never
// answers (S, request_wait_answer). Both are stalls by the page_fault
// rule.
func TestPageFaultStall(t *testing.T) {
	privtest.Require(t)
	for _, c := range []struct {
		name string
		fuse bool
	}{{"userfaultfd", false}, {"fuse mmap", true}} {
		t.Run(c.name, func(t *testing.T) {
			if c.fuse {
				fusehang.Require(t)
			} else {
				privtest.RequireUserfaultfd(t)
			}
			w := startWorkload(t)
			cmd := "touch-uffd"
			if c.fuse {
				// Mounted after the workload: its cleanup answers the
				// held read before the workload is stopped.
				cmd = "touch-file " + fusehang.Mount(t, fusehang.Options{}).File
			}
			agent := watchAsleep(t, w.PID)
			r, err := w.Do(cmd)
			if err != nil {
				t.Fatal(err)
			}
			asleep := time.Now()
			tid, _ := r.Int("tid")
			if st := taskState(t, w.PID, tid); st != "S" {
				t.Fatalf("faulting thread in state %s, want S", st)
			}
			stall := stallOf(t, agent, tid, asleep)
			wantFields(t, "stall", stall, map[string]any{"reason": "page_fault", "syscall": "none", "nr": -1, "state": "interruptible"})
		})
	}
}

// One thread faulting on page after page of a userfaultfd whose handler
// resolves each (UFFDIO_COPY) 300ms to 700ms after the fault began, for
// 6s, as a lazily restored or migrating process does: asleep outside a
// syscall at nearly every poll, but never for the budget in one sleep, so
// never a stall.
func TestResolvedPageFaultsNotFlagged(t *testing.T) {
	privtest.Require(t)
	privtest.RequireUserfaultfd(t)
	w := startWorkload(t)
	errs := make(chan error, 1)
	stop := make(chan struct{})
	go func() {
		errs <- func() error {
			const pages = 8
			for {
				if _, err := w.Do(fmt.Sprintf("touch-uffd %d", pages)); err != nil {
					return err
				}
				for i := range pages {
					// The delay is what is tested: how long each
					// fault waits for its handler.
					time.Sleep(asleepBudget*3/10 + time.Duration(i%5)*asleepBudget/10)
					if _, err := w.Do("touch-uffd-next"); err != nil {
						return err
					}
					select {
					case <-stop:
						_, err := w.Do("touch-uffd-release")
						if i == pages-1 {
							err = nil // nothing left to release
						}
						return err
					default:
					}
				}
			}
		}()
	}()
	watchHealthy(t, 6*time.Second, "--pid", itoa(w.PID), "--budget", asleepBudget.String(), "--kill-after", "3s")
	close(stop)
	if err := <-errs; err != nil {
		t.Fatal(err)
	}
}

// A thread that computes in user space, with no syscall at all, is
// running or waiting for a CPU (preempted on a busy machine), never
// asleep: not a page fault, and with a 1s budget never a stall.
func TestUserSpaceSpinNotFlagged(t *testing.T) {
	privtest.Require(t)
	w := startWorkload(t)
	if _, err := w.Do("compute"); err != nil {
		t.Fatal(err)
	}
	watchHealthy(t, 5*time.Second, "--pid", itoa(w.PID), "--budget", asleepBudget.String(), "--kill-after", "3s")
	if _, err := w.Do("compute-stop"); err != nil {
		t.Fatal(err)
	}
}

// startSeccompWait starts seccompwait and takes its listener.
func startSeccompWait(t *testing.T) (*ctarget.Proc, *ctarget.Supervisor) {
	t.Helper()
	p := ctarget.Start(t, ctarget.Build(t, "seccompwait"))
	return p, ctarget.TakeListener(t, p.Int(t, "pid"), p.Int(t, "listener"))
}

// A syscall a seccomp user-notification supervisor holds and never
// answers (a hung or dead LXD, Sysbox...): seccomp holds it before
// sys_enter, yet it is a stall by mkdirat's own rule, named.
func TestSeccompHeldSyscallStall(t *testing.T) {
	privtest.Require(t)
	p, sup := startSeccompWait(t)
	pid := p.Int(t, "pid")
	agent := watchAsleep(t, pid)
	if _, err := fmt.Fprintf(p.Stdin, "mkdir %s/held\n", t.TempDir()); err != nil {
		t.Fatal(err)
	}
	if _, err := sup.Recv(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	held := time.Now()
	stall := stallOf(t, agent, pid, held)
	wantFields(t, "stall", stall, map[string]any{"reason": "over_budget", "syscall": "mkdirat", "state": "interruptible"})
	if os.Getenv(TrackerEnv) != "sampled" {
		wantFields(t, "stall", stall, map[string]any{"held_before_entry": true})
	}
}

// The same supervisor answering every mkdirat 500ms after it came, for 6s:
// a slow supervisor within the budget, never a stall.
func TestSeccompAnsweredNotFlagged(t *testing.T) {
	privtest.Require(t)
	p, sup := startSeccompWait(t)
	dir := t.TempDir()
	errs := make(chan error, 1)
	stop := make(chan struct{})
	go func() {
		errs <- func() error {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return nil
				default:
				}
				if _, err := fmt.Fprintf(p.Stdin, "mkdir %s/%d\n", dir, i); err != nil {
					return err
				}
				n, err := sup.Recv(10 * time.Second)
				if err != nil {
					return err
				}
				// The delay is what is tested: the supervisor's.
				time.Sleep(asleepBudget / 2)
				if err := sup.Answer(n, 0, 0); err != nil {
					return err
				}
			}
		}()
	}()
	watchHealthy(t, 6*time.Second, "--pid", itoa(p.Int(t, "pid")), "--budget", asleepBudget.String(), "--kill-after", "3s")
	close(stop)
	if err := <-errs; err != nil {
		t.Fatal(err)
	}
}

// A frozen cgroup parks every thread in S outside any syscall, as a page
// fault would: with a 1s budget the first stall is still the frozen rule's
// (3s, no kill), and no thread is judged by the page_fault rule.
func TestFrozenIsNotPageFault(t *testing.T) {
	privtest.Require(t)
	w := startWorkload(t)
	if _, err := w.Do("pipe-wait"); err != nil {
		t.Fatal(err)
	}
	cg := cgrouptest.New(t)
	if err := cg.Add(w.PID); err != nil {
		t.Fatal(err)
	}
	agent := watchAsleep(t, w.PID, "--late-return", "resume")
	if err := cg.Freeze(true); err != nil {
		t.Fatal(err)
	}
	stall := agent.Events.Next("stall", 10*time.Second)
	if stall["reason"] != "frozen" {
		t.Fatalf("first stall %v, want reason frozen", stall)
	}
	if err := cg.Freeze(false); err != nil {
		t.Fatal(err)
	}
	agent.Events.Next("stall_cleared", 10*time.Second)
	for _, ev := range agent.Events.Drain() {
		if ev["msg"] == "stall" && ev["reason"] != "frozen" || ev["msg"] == "kill" {
			t.Fatalf("frozen target: %v", ev)
		}
	}
}
