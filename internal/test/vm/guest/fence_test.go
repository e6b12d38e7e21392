package guest

import (
	"fmt"
	"testing"
	"time"
)

// The escalation for a target that cannot be killed: stallmon armed with
// --on-unkillable takes the node down. It resets the guest, so it runs in
// a boot of its own per method (vmtest_scenario=fence-reboot or
// fence-watchdog), and the host harness checks that the VM did reset: the
// test fails only if it is still running long after.
func TestNodeFence(t *testing.T) {
	for _, method := range []string{"reboot", "watchdog"} {
		t.Run(method, func(t *testing.T) {
			requireScenario(t, "fence-"+method)
			flags := []string{"--budget", "300ms", "--kill-after", "1s", "--kill-grace", "1s", "--on-unkillable", method}
			if method == "watchdog" {
				// softdog's device, loaded by /init in this boot.
				flags = append(flags, "--watchdog-device", "/dev/watchdog", "--watchdog-timeout", "3s")
			}
			n := startNode(t, "sleep-d:busy", flags...)
			n.child.enter(t)
			kill := n.agent.Events.Next("kill", 30*time.Second)
			// The host times the reset from the kill, on its own clock:
			// say how long after it this line comes, as a loaded guest
			// can read the event late.
			lag := time.Since(eventTime(t, kill))
			fmt.Printf("\n%s method=%s %s=%d\n", FenceMarker, method, FenceLagField, lag.Milliseconds())
			// Checked if the guest lives long enough to read them (with
			// reboot it usually does not); the host checks the reset.
			nextUnkillable(t, n, ioctlHang.stack...)
			ev := n.agent.Events.Next("node_fence", 30*time.Second)
			wantFields(t, ev, map[string]any{"method": method})
			// Nothing in the guest can see its own reset: the host does.
			// Reaching the end of this wait is the failure.
			time.Sleep(30 * time.Second)
			t.Fatalf("the node is still up 30s after stallmon fenced it with %s", method)
		})
	}
}
