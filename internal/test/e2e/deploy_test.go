package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stallmon/stallmon/internal/testutil/privtest"
)

// The systemd units in deploy/ pass systemd-analyze verify, with the
// stallmon binary under test where the units expect /usr/local/bin/stallmon,
// and keep the capabilities stallmon checks for.
func TestDeployUnitsVerify(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
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
		text := strings.ReplaceAll(string(b), "/usr/local/bin/stallmon", stallmonBin)
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
	out, err := exec.Command(analyze, "verify", "--man=no", path).CombinedOutput()
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
