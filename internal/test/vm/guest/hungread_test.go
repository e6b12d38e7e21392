package guest

import (
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stallmon/stallmon/heartbeat"
	"github.com/stallmon/stallmon/internal/testutil/fusehang"
	"github.com/stallmon/stallmon/internal/testutil/harness"
	"github.com/stallmon/stallmon/internal/testutil/workloadtest"
	"github.com/stallmon/stallmon/internal/workload"
)

// A kill that needs no faultmod, so that a lane without the module (arm64,
// whose module is not cross-built) proves it: a read of a FUSE file whose
// server never answers is reported with its syscall, fd, the file's kind
// and file system, the heartbeat stops, and at kill_after the target is
// killed through its pidfd. Before that, a pipe read of the same target
// waits past kill_after and is spared, its heartbeat going on.
func TestHungFUSEReadIsKilled(t *testing.T) { hungFUSERead(t) }

// The sampled tracker, with no syscall program, judges and kills alike.
func TestSampledHungFUSEReadIsKilled(t *testing.T) {
	requireSampled(t)
	hungFUSERead(t, "--tracker", "sampled")
}

func hungFUSERead(t *testing.T, flags ...string) {
	requireVM(t)
	fusehang.Require(t)
	bin := os.Getenv(harness.BinEnv)
	if bin == "" {
		t.Fatalf("%s is not set: the VM's /init sets it when the initramfs has /bin/stallmon", harness.BinEnv)
	}
	const budget, killAfter = 500 * time.Millisecond, 2 * time.Second
	w := workloadtest.Start(t)
	// Mounted after the workload started: its cleanup answers the held
	// read before the workload's cleanup waits for the workload to end.
	fs := fusehang.Mount(t, fusehang.Options{HonourInterrupts: true})
	c := harness.NewCluster(t)
	args := append([]string{"attach", "--pid", strconv.Itoa(w.PID), "--log-format", "json", "--node-id", "vm",
		"--budget", budget.String(), "--kill-after", killAfter.String(),
		"--poll-interval", poll.String(), "--interval", interval.String(), "--metrics-addr", ""}, flags...)
	agent := harness.Start(t, bin, append(args, c.GroupFlags()...)...)
	if olderThan(t, kernelRelease(t), 5, 15) {
		// Without bpf_task_pt_regs and the rest (Linux 5.10): the
		// minimal object is what finds and kills here.
		agent.Events.Next("bpf_minimal_loaded", 30*time.Second)
	}
	agent.Events.Next("attached", 30*time.Second)

	pipe := doWorkload(t, w, "pipe-wait")
	pipeAt := time.Now()
	c.WaitPacket("ALIVE while the pipe read waits past kill_after", 30*time.Second, func(p heartbeat.Packet) bool {
		return p.State == heartbeat.StateAlive && time.Unix(0, p.SendTime).Sub(pipeAt) > killAfter+poll
	})

	r := doWorkload(t, w, "read-file "+fs.File)
	tid, fd := replyInt(t, r, "tid"), replyInt(t, r, "fd")
	// The first stall must be the FUSE read: one of the pipe reader
	// would be a healthy wait judged as a hang.
	stall := agent.Events.Next("stall", 30*time.Second)
	wantFields(t, stall, map[string]any{"tid": tid, "syscall": "read", "fd": fd,
		"fd_kind": "regular", "fs": "fuse", "reason": "over_budget"})
	c.WaitPacket("STALLED", 30*time.Second, func(p heartbeat.Packet) bool { return p.State == heartbeat.StateStalled })
	kill := agent.Events.Next("kill", 30*time.Second)
	if el, _ := kill["elapsed_seconds"].(float64); el <= killAfter.Seconds() {
		t.Errorf("killed at elapsed %vs, before kill_after %v", el, killAfter)
	}
	if code := agent.Wait(t, 30*time.Second); code != exitKilled {
		t.Fatalf("stallmon attach exited %d, want %d (killed)", code, exitKilled)
	}
	err := w.Wait()
	if err == nil || !strings.Contains(err.Error(), "killed") {
		t.Fatalf("workload ended with %v, want killed by a signal", err)
	}
	if ws := w.Cmd.ProcessState.Sys().(syscall.WaitStatus); !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("workload status %v, want SIGKILL", ws)
	}
	t.Logf(ResultPrefix+"hung FUSE read%s: pipe read (tid %d) spared past kill_after %v; FUSE read stalled at %.2fs (budget %v), killed at %.2fs",
		trackerNote(flags), replyInt(t, pipe, "tid"), killAfter, stall["elapsed_seconds"], budget, kill["elapsed_seconds"])
}

func doWorkload(t *testing.T, w *workload.Proc, cmd string) workload.Reply {
	t.Helper()
	r, err := w.Do(cmd)
	if err != nil {
		t.Fatalf("workload %q: %v", cmd, err)
	}
	return r
}

func replyInt(t *testing.T, r workload.Reply, key string) int {
	t.Helper()
	v, err := r.Int(key)
	if err != nil {
		t.Fatalf("workload reply field %s: %v", key, err)
	}
	return v
}
