package e2e

import (
	"testing"
	"time"

	"github.com/stallmon/stallmon/internal/testutil/privtest"
)

// A killed target with 4 GiB resident takes a while to tear down its
// address space; the default --kill-grace (5s) covers it, so it is
// reported killed (exit 3), not unkillable (exit 4).
func TestKillGraceCoversLargeTarget(t *testing.T) {
	privtest.Require(t)
	w := startWorkload(t)
	if _, err := w.DoTimeout("alloc 4096", time.Minute); err != nil {
		t.Fatal(err)
	}
	agent := startStallmon(t, "attach", "--pid", itoa(w.PID), "--log-format", "json", "--no-heartbeat",
		"--budget", "300ms", "--kill-after", "1s", "--metrics-addr", "")
	agent.Events.Next("attached", 20*time.Second)
	if _, err := w.Do("uffd-hang"); err != nil {
		t.Fatal(err)
	}
	if code := agent.Wait(t, 30*time.Second); code != exitKilled {
		t.Fatalf("stallmon exited %d, want %d (killed within the kill grace)", code, exitKilled)
	}
	kill := agent.Events.Next("kill", time.Second)
	exited := agent.Events.Next("target_exited", time.Second)
	killAt, err1 := time.Parse(time.RFC3339Nano, kill["time"].(string))
	exitAt, err2 := time.Parse(time.RFC3339Nano, exited["time"].(string))
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	t.Logf("4 GiB target: SIGKILL to exit confirmed %v (kill grace 5s)", exitAt.Sub(killAt).Round(time.Millisecond))
}
