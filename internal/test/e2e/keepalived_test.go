package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stallmon/stallmon/internal/testutil/fusehang"
	"github.com/stallmon/stallmon/internal/testutil/harness"
	"github.com/stallmon/stallmon/internal/testutil/keepalivedtest"
	"github.com/stallmon/stallmon/internal/workload"
)

// keepalivedNode is node A of a keepalived pair whose track_file a real
// stallmon attached to a workload writes; node B's file says 0 and a
// stand-in plays its stallmon.
type keepalivedNode struct {
	pair *keepalivedtest.Pair
	file string
}

// How long the VIP takes to come back to A once its stallmon says alive:
// A's master-down timer (3 adverts of 1s + skew), after stallmon attached.
const vipReturn = 8 * time.Second

func startKeepalivedPair(t *testing.T) *keepalivedNode {
	t.Helper()
	keepalivedtest.Require(t)
	fusehang.Require(t)
	k := &keepalivedNode{file: filepath.Join(t.TempDir(), "verdict")}
	// Until a stallmon writes it, A's file says what stallmon says when
	// it starts: A must not take the VIP.
	keepalivedtest.WriteFile(t, k.file, 5)
	fileB := filepath.Join(t.TempDir(), "verdict")
	keepalivedtest.WriteFile(t, fileB, 0)
	keepalivedtest.StandIn(t, fileB)
	k.pair = keepalivedtest.StartPair(t, k.file, fileB)
	k.pair.B.WaitVIP(t, vipReturn)
	return k
}

// attach starts a workload and a stallmon that watches it and writes A's
// file, and waits for the VIP on A.
func (k *keepalivedNode) attach(t *testing.T, budget time.Duration) (*workload.Proc, *harness.Proc) {
	t.Helper()
	w := startWorkload(t)
	agent := startStallmon(t, "attach", "--pid", itoa(w.PID), "--no-heartbeat", "--log-format", "json",
		"--poll-interval", "100ms", "--metrics-addr", "", "--budget", budget.String(), "--kill-after", "1m",
		"--keepalived-file", k.file)
	attached := agent.Events.Next("attached", 10*time.Second)
	at := k.pair.A.WaitVIP(t, vipReturn)
	// Both hold it until B hears A's first advert: a hang before B let
	// go would find the VIP "on B" at once.
	k.pair.B.WaitNoVIP(t, vipReturn)
	t.Logf("VIP on A %v after attached", at.Sub(eventTime(t, attached)).Round(time.Millisecond))
	return w, agent
}

func (k *keepalivedNode) value(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(k.file)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// A read that hangs on a FUSE mount moves the VIP from A to B within the
// budget plus detection and keepalived's handover, trial after trial.
func TestKeepalivedVIPLeavesHungService(t *testing.T) {
	const budget = 500 * time.Millisecond
	// Detection: the budget, a poll, the publisher's poke; then a
	// priority-0 advert and the backup's skew time (~0.6s measured).
	const bound = budget + 2*time.Second
	k := startKeepalivedPair(t)
	for trial := 1; trial <= 3; trial++ {
		t.Run("trial"+itoa(trial), func(t *testing.T) {
			w, agent := k.attach(t, budget)
			fs := fusehang.Mount(t, fusehang.Options{HonourInterrupts: true})
			if _, err := w.Do("read-file " + fs.File); err != nil {
				t.Fatal(err)
			}
			hung := time.Now()
			moved := k.pair.B.WaitVIP(t, 10*time.Second)
			handover := moved.Sub(hung)
			stall := agent.Events.Next("stall", time.Second)
			t.Logf("trial %d: hang to VIP on B %v (stall event after %v)", trial, handover.Round(time.Millisecond),
				eventTime(t, stall).Sub(hung).Round(time.Millisecond))
			if handover < budget || handover > bound {
				t.Errorf("hang to VIP on B took %v, want between the %v budget and %v", handover, budget, bound)
			}
			if k.pair.A.HasVIP(t) {
				t.Error("VIP on both nodes")
			}
			if got := k.value(t); got != "1\n" {
				t.Errorf("file says %q during the stall, want \"1\\n\" (stalled)", got)
			}
			// SIGTERM: stallmon leaves the file unhealthy behind it.
			agent.Cmd.Process.Signal(syscall.SIGTERM)
			agent.Wait(t, 5*time.Second)
			if got := k.value(t); got == "0\n" {
				t.Errorf("file says %q after stallmon stopped, want non-zero", got)
			}
		})
	}
}

// A stallmon killed with SIGKILL leaves a 0 behind it; the template's
// vrrp_script guard moves the VIP all the same.
func TestKeepalivedVIPLeavesWhenStallmonIsKilled(t *testing.T) {
	k := startKeepalivedPair(t)
	_, agent := k.attach(t, 500*time.Millisecond)
	if err := agent.Cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	moved := k.pair.B.WaitVIP(t, 4*time.Second)
	t.Logf("SIGKILL to VIP on B %v", moved.Sub(killed).Round(time.Millisecond))
	if got := k.value(t); got != "0\n" {
		t.Fatalf("file says %q, want the \"0\\n\" a killed stallmon leaves (else the guard proved nothing)", got)
	}
}

// A --keepalived-file stallmon cannot write is refused before anything
// is attached or started, in one line, and leaves nothing behind.
func TestKeepalivedFileBadInput(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct{ name, file, msg string }{
		{"missing directory", filepath.Join(dir, "missing", "verdict"), "does not exist"},
		{"a directory", dir, "is a directory"},
	} {
		for _, args := range [][]string{{"attach", "--pid", "1"}, {"run", "--", "true"}} {
			t.Run(tc.name+"/"+args[0], func(t *testing.T) {
				args := append([]string{args[0], "--keepalived-file", tc.file}, args[1:]...)
				code, stderr := runStallmon(t, nil, args...)
				if code != exitUsage || !strings.Contains(stderr, "--keepalived-file: ") || !strings.Contains(stderr, tc.msg) {
					t.Fatalf("exit %d, stderr %q; want exit %d with --keepalived-file and %q", code, stderr, exitUsage, tc.msg)
				}
				if n := strings.Count(strings.TrimSpace(stderr), "\n"); n != 0 {
					t.Fatalf("error is %d lines, want one: %q", n+1, stderr)
				}
			})
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("%d entries left in %s, want none", len(entries), dir)
	}
}
