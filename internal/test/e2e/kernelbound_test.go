package e2e

import (
	"strconv"
	"testing"
	"time"

	"github.com/stallmon/stallmon/heartbeat"
	"github.com/stallmon/stallmon/internal/testutil/ctarget"
	"github.com/stallmon/stallmon/internal/testutil/harness"
	"github.com/stallmon/stallmon/internal/testutil/privtest"
)

// A thread filling a 16 MiB buffer with getrandom(2) in a loop spends all
// but nanoseconds of each call in the kernel, never sleeps and makes no
// read or write call: nothing the kernel keeps per thread tells its calls
// apart, and the sampled tracker ages them as one (docs/trackers.md).
// The tracepoint tracker sees each return: with the built-in table
// (getrandom under the default rule, 5 s), it must stay silent past the
// budget. Not in the sampled pass, whose limit this is.
func TestKernelBoundLoopNotStalled(t *testing.T) {
	privtest.Require(t)
	target := ctarget.Start(t, ctarget.Build(t, "getrandomloop"))
	pid, err := strconv.Atoi(target.Ready["pid"])
	if err != nil {
		t.Fatalf("ready line %v: %v", target.Ready, err)
	}
	c := newCluster(t)
	agent := harness.Start(t, stallmonBin, append([]string{"attach", "--tracker", "tracepoint", "--pid", itoa(pid),
		"--log-format", "json", "--node-id", "kernel-bound", "--interval", "200ms",
		"--poll-interval", pollInterval.String(), "--metrics-addr", "127.0.0.1:0"}, c.GroupFlags()...)...)
	addr := agent.Events.Next("metrics_listening", 20*time.Second)["addr"].(string)
	agent.Events.Next("attached", 20*time.Second)
	c.WaitPacket("ALIVE", 10*time.Second, func(p heartbeat.Packet) bool { return p.State == heartbeat.StateAlive })
	b := &builtinWatch{agent: agent, c: c, addr: addr}
	// 70 polls of 100 ms: past the default rule's 5 s budget.
	waitPolls(t, addr, 70)
	b.spared(t, pid)
}
