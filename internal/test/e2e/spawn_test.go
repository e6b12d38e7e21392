package e2e

import (
	"io"
	"testing"
	"time"

	"github.com/stallmon/stallmon/internal/testutil/ctarget"
	"github.com/stallmon/stallmon/internal/testutil/fusehang"
	"github.com/stallmon/stallmon/internal/testutil/privtest"
)

// A posix_spawn whose child execs a program on a file system that stopped
// answering. The parent waits in clone3, in killable D, which the
// built-in table exempts (a spawn may wait as long as its child's file
// actions: TestSpawnParentNotFlagged); the child, another process outside
// --pid, sleeps in its execve for ever: in S over direct I/O, in killable
// D over the page cache. That is a stall of the target within its budget
// and two polls, reported on the parent with the child named.
func TestSpawnExecOnHungFS(t *testing.T) {
	privtest.Require(t)
	fusehang.Require(t)
	bin := ctarget.Build(t, "spawnwait")
	for _, c := range []struct {
		name  string
		opts  fusehang.Options
		state string
	}{
		{"S", fusehang.Options{Executable: true}, "interruptible"},
		{"D", fusehang.Options{Executable: true, PageCache: true}, "killable"},
	} {
		t.Run(c.name, func(t *testing.T) { spawnExecStall(t, bin, c.opts, c.state) })
	}
}

func spawnExecStall(t *testing.T, bin string, opts fusehang.Options, childState string) {
	// A poll that does not divide the budget: the child is first seen
	// at most a poll after its exec began, its time counts from there,
	// and the first poll past the budget comes less than a poll later.
	const budget, poll = time.Second, 150 * time.Millisecond
	fs := fusehang.Mount(t, opts)
	p := ctarget.Start(t, bin, "exec", fs.File)
	// Cleanups run last first: the exec is answered (and fails) before
	// the parent is killed and waited for.
	t.Cleanup(fs.Release)
	pid := p.Cmd.Process.Pid
	agent := startStallmon(t, "attach", "--pid", itoa(pid), "--no-heartbeat", "--log-format", "json",
		"--poll-interval", poll.String(), "--budget", budget.String(), "--no-kill", "--metrics-addr", "127.0.0.1:0")
	addr := agent.Events.Next("metrics_listening", 10*time.Second)["addr"].(string)
	agent.Events.Next("attached", 10*time.Second)
	lag := pollLag(t, addr)

	if _, err := io.WriteString(p.Stdin, "spawn\n"); err != nil {
		t.Fatal(err)
	}
	spawned := time.Now()
	if _, err := fs.WaitFor("the exec's read of the program", 10*time.Second, func(s fusehang.Stats) bool { return s.Pending > 0 }); err != nil {
		t.Fatal(err)
	}
	stall := agent.Events.Next("stall", 10*time.Second)
	wantFields(t, "stall", stall, map[string]any{
		"pid": pid, "tid": pid, "syscall": "clone3", "state": "killable", "reason": "vfork_child",
		"child_syscall": "execve", "child_state": childState, "budget_seconds": budget.Seconds(),
	})
	if c, _ := stall["child_pid"].(float64); c <= 0 || int(c) == pid {
		t.Errorf("stall names child_pid %v, want the spawned child's", stall["child_pid"])
	}
	took := eventTime(t, stall).Sub(spawned)
	lag = pollLag(t, addr) - lag
	if took > budget+2*poll+lag {
		t.Errorf("stall %v after the spawn, want within the %v budget and two %v polls (and the polls' lag, %v)",
			took.Round(time.Millisecond), budget, poll, lag.Round(time.Millisecond))
	}
	t.Logf("spawn to stall %v (polls' lag %v): %v", took.Round(time.Millisecond), lag.Round(time.Millisecond), stall)
}
