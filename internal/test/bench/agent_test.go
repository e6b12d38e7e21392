package bench

import (
	"syscall"
	"testing"
	"time"

	"github.com/stallmon/stallmon/internal/event"
	"github.com/stallmon/stallmon/internal/testutil/harness"
)

// stopSignal is how an operator stops stallmon or a service.
const stopSignal = syscall.SIGTERM

// startAgent runs `stallmon attach` with tr selected, heartbeating on c as
// node, and returns once it attached. args add to or override the
// defaults (a later flag wins).
func startAgent(t *testing.T, tr Tracker, c *harness.Cluster, node string, args ...string) *harness.Proc {
	t.Helper()
	return startAgentBin(t, stallmonBin, tr, c, node, args...)
}

// startAgentBin is startAgent with the stallmon binary at bin: the
// baseline build's in the poll-cost rows.
func startAgentBin(t *testing.T, bin string, tr Tracker, c *harness.Cluster, node string, args ...string) *harness.Proc {
	t.Helper()
	all := append([]string{"attach", "--log-format", "json", "--metrics-addr", "", "--node-id", node}, c.GroupFlags()...)
	p := harness.Start(t, bin, tr.AttachArgs(append(all, args...)...)...)
	p.Events.Next(event.Attached, time.Minute)
	return p
}

// stopAgent stops an agent as an operator does, with SIGTERM, and wants
// it gone with status 0 (the target left alone).
func stopAgent(t *testing.T, p *harness.Proc) {
	t.Helper()
	if err := p.Cmd.Process.Signal(stopSignal); err != nil {
		t.Fatalf("stopping stallmon: %v", err)
	}
	if code := p.Wait(t, 30*time.Second); code != 0 {
		t.Fatalf("stallmon exited %d after SIGTERM, want 0", code)
	}
}
