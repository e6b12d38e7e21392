package e2e

import (
	"os"
	osexec "os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stallmon/stallmon/internal/agent"
	"github.com/stallmon/stallmon/internal/asynclog"
	"github.com/stallmon/stallmon/internal/integrations/etcd"
	"github.com/stallmon/stallmon/internal/integrations/keepalived"
	"github.com/stallmon/stallmon/internal/integrations/pacemaker"
	"github.com/stallmon/stallmon/internal/sink"
	"github.com/stallmon/stallmon/internal/supervise"
	"github.com/stallmon/stallmon/internal/testutil/privtest"
)

// The systemd units in deploy/ pass systemd-analyze verify, with the
// stallmon binary under test where the units expect /usr/bin/stallmon,
// and keep the capabilities stallmon checks for.
func TestDeployUnitsVerify(t *testing.T) {
	analyze, err := osexec.LookPath("systemd-analyze")
	if err != nil {
		privtest.Unavailable(t, "needs systemd-analyze (Debian's systemd package): "+err.Error())
		return
	}
	dir := t.TempDir()
	for unit, as := range map[string]string{
		"stallmon-redis.service":   "stallmon-redis.service",
		"stallmon-attach@.service": "stallmon-attach@nginx.service",
	} {
		b, err := os.ReadFile(filepath.Join(root, "deploy", "systemd", unit))
		if err != nil {
			t.Fatal(err)
		}
		text := strings.ReplaceAll(string(b), "/usr/bin/stallmon", stallmonBin)
		for _, cap := range []string{"CAP_BPF", "CAP_PERFMON", "CAP_KILL"} {
			if !strings.Contains(text, cap) {
				t.Errorf("%s: CapabilityBoundingSet lacks %s", unit, cap)
			}
		}
		path := filepath.Join(dir, as)
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		verifyUnit(t, analyze, path)
	}
}

// verifyUnit runs systemd-analyze verify on the unit at path. Without
// systemd as PID 1 it cannot resolve the units named as dependencies
// (nginx.service, network-online.target), and says so; anything else is
// a mistake in the unit.
func verifyUnit(t *testing.T, analyze, path string) {
	t.Helper()
	out, err := osexec.Command(analyze, "verify", "--man=no", path).CombinedOutput()
	var problems []string
	for line := range strings.Lines(string(out)) {
		if l := strings.TrimSpace(line); l != "" && !strings.Contains(l, "Failed to add dependency") &&
			!strings.Contains(l, "not found") && !strings.Contains(l, "Failed to load") {
			problems = append(problems, l)
		}
	}
	if err != nil && len(problems) == 0 {
		problems = append(problems, err.Error())
	}
	if len(problems) > 0 {
		t.Errorf("systemd-analyze verify %s:\n%s", filepath.Base(path), strings.Join(problems, "\n"))
	}
}

// Each shipped unit gives stallmon's stop the time it takes, so that
// systemd does not SIGKILL it in the middle of keeping its word. The
// bound is the sum of every bounded step on the stop's path, taken from
// the constants the code uses (the values are the flags in ExecStart=,
// else stallmon's defaults as its --help gives them):
//
//   - attach: the last poll (one --poll-interval), the fence of a declared
//     stall (--kill-grace, the unkillable report, one more poll);
//   - run: instead, the service's --stop-timeout, the kill's --kill-grace
//     and the abandoned service's description;
//   - then, for both: the heartbeat's hub stopping (its flush, then one
//     cancelled send), the integrations' hub the same, each enabled
//     sink's close, and the log's flush.
//
// Before, the test counted only --kill-grace plus 2 s (and --stop-timeout).
func TestDeployUnitsStopInTime(t *testing.T) {
	const margin = 3 * time.Second
	hub := sink.FlushTimeout + sink.DefaultApplyTimeout
	for unit, cmd := range map[string]string{
		"stallmon-attach@.service": "attach",
		"stallmon-notify@.service": "attach",
		"stallmon-redis.service":   "run",
	} {
		b, err := os.ReadFile(filepath.Join(root, "deploy", "systemd", unit))
		if err != nil {
			t.Fatal(err)
		}
		text := string(b)
		exec := unitValue(t, text, "ExecStart")
		if !strings.Contains(exec, "stallmon "+cmd) {
			t.Fatalf("%s: ExecStart=%s does not run stallmon %s", unit, exec, cmd)
		}
		flag := func(name string) time.Duration {
			if _, v, ok := strings.Cut(exec, "--"+name+" "); ok {
				d, err := time.ParseDuration(strings.Fields(v)[0])
				if err != nil {
					t.Fatalf("%s: --%s: %v", unit, name, err)
				}
				return d
			}
			return flagDefault(t, cmd, name)
		}
		has := func(name string) bool {
			return strings.Contains(exec, "--"+name+" ") || strings.HasSuffix(exec, "--"+name) ||
				strings.Contains(exec, "--"+name+"=")
		}
		var need time.Duration
		if cmd == "run" {
			need = flag("stop-timeout") + flag("kill-grace") + supervise.DescribeDeadline
		} else {
			poll := flag("poll-interval")
			need = poll + flag("kill-grace") + agent.DiagnoseDeadline + poll
		}
		if !has("no-heartbeat") {
			need += hub
		}
		integrations := false
		if has("pacemaker") {
			integrations = true
			need += pacemaker.DefaultCloseTimeout
		}
		if has("keepalived-file") {
			integrations = true
			need += keepalived.CloseTimeout
		}
		if has("etcd-endpoints") {
			integrations = true
			// The lease's revoke, the campaigns' end, the hooks'.
			need += 2*etcd.CloseTimeout + flag("etcd-hook-timeout") + time.Second
		}
		if has("systemd-notify") {
			integrations = true // its Close does nothing
		}
		if integrations {
			need += hub
		}
		need += asynclog.FlushTimeout
		v := unitValue(t, text, "TimeoutStopSec")
		if v == "" {
			v = "90s" // systemd's DefaultTimeoutStopSec
		}
		have, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("%s: TimeoutStopSec=%s: %v", unit, v, err)
		}
		if have < need+margin {
			t.Errorf("%s: TimeoutStopSec=%v, want at least %v for stallmon %s to stop on its own", unit, have, need+margin, cmd)
		}
		t.Logf("%s: TimeoutStopSec=%v, stallmon %s needs up to %v", unit, have, cmd, need)
	}
}

// flagDefault is the default of a duration flag of stallmon cmd, as
// `stallmon cmd --help` prints it.
func flagDefault(t *testing.T, cmd, name string) time.Duration {
	t.Helper()
	out, err := osexec.Command(stallmonBin, cmd, "--help").CombinedOutput()
	if err != nil {
		t.Fatalf("stallmon %s --help: %v", cmd, err)
	}
	for line := range strings.Lines(string(out)) {
		if !strings.HasPrefix(strings.TrimSpace(line), "--"+name+" ") {
			continue
		}
		_, d, ok := strings.Cut(line, "(default ")
		if !ok {
			break
		}
		v, err := time.ParseDuration(strings.TrimSuffix(strings.TrimSpace(d), ")"))
		if err != nil {
			t.Fatalf("stallmon %s --%s default: %v", cmd, name, err)
		}
		return v
	}
	t.Fatalf("stallmon %s --help names no default for --%s", cmd, name)
	return 0
}
