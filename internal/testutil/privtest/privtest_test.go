package privtest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// recorder stands in for a testing.TB so the skip-or-fail decision can be
// observed without ending the calling test.
type recorder struct {
	testing.TB
	skipped, failed string
}

func (r *recorder) Helper() {}

func (r *recorder) Skipf(format string, args ...any) { r.skipped = fmt.Sprintf(format, args...) }

func (r *recorder) Fatalf(format string, args ...any) { r.failed = fmt.Sprintf(format, args...) }

func TestUnavailableSkipsByDefault(t *testing.T) {
	t.Setenv(StrictEnv, "")
	r := &recorder{TB: t}
	unavailable(r, "needs a unicorn")
	if r.failed != "" || !strings.Contains(r.skipped, "needs a unicorn") {
		t.Fatalf("skipped=%q failed=%q, want a skip naming the reason", r.skipped, r.failed)
	}
}

func TestUnavailableFailsWhenStrict(t *testing.T) {
	t.Setenv(StrictEnv, "1")
	r := &recorder{TB: t}
	unavailable(r, "needs a unicorn")
	if r.skipped != "" || !strings.Contains(r.failed, "needs a unicorn") {
		t.Fatalf("skipped=%q failed=%q, want a failure naming the reason", r.skipped, r.failed)
	}
}

func TestRootPasses(t *testing.T) {
	Require(t)
	t.Setenv(StrictEnv, "1")
	r := &recorder{TB: t}
	Require(r)
	RequireUserfaultfd(r)
	if r.skipped != "" || r.failed != "" {
		t.Fatalf("as root: skipped=%q failed=%q, want neither", r.skipped, r.failed)
	}
}

// childEnv marks the re-executed test binary that runs as an unprivileged user.
const childEnv = "PRIVTEST_CHILD"

func TestChildRequire(t *testing.T) {
	if os.Getenv(childEnv) != "1" {
		t.Skip("helper for TestAsNobody")
	}
	Require(t)
}

func TestChildUserfaultfd(t *testing.T) {
	if os.Getenv(childEnv) != "1" {
		t.Skip("helper for TestAsNobody")
	}
	RequireUserfaultfd(t)
}

// TestAsNobody drops to uid 65534 in a real child process: the only honest
// way to see Require and RequireUserfaultfd meet a missing privilege.
func TestAsNobody(t *testing.T) {
	Require(t)
	bin := copyExecutable(t)
	uffdOpen := readSysctl(t, "/proc/sys/vm/unprivileged_userfaultfd") == "1"

	for _, tc := range []struct {
		test, reason string
		unavailable  bool
	}{
		{"TestChildRequire", "needs root (euid is 65534)", true},
		{"TestChildUserfaultfd", "needs userfaultfd", !uffdOpen},
	} {
		for _, strictMode := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/strict=%v", tc.test, strictMode), func(t *testing.T) {
				out, err := runAsNobody(t, bin, tc.test, strictMode)
				switch {
				case !tc.unavailable:
					if err != nil || !strings.Contains(out, "--- PASS: "+tc.test) {
						t.Fatalf("want PASS, got err=%v output:\n%s", err, out)
					}
				case strictMode:
					if err == nil || !strings.Contains(out, "--- FAIL: "+tc.test) || !strings.Contains(out, tc.reason) {
						t.Fatalf("want FAIL naming %q, got err=%v output:\n%s", tc.reason, err, out)
					}
				default:
					if err != nil || !strings.Contains(out, "--- SKIP: "+tc.test) || !strings.Contains(out, tc.reason) {
						t.Fatalf("want SKIP naming %q, got err=%v output:\n%s", tc.reason, err, out)
					}
				}
			})
		}
	}
}

// copyExecutable puts the test binary where uid 65534 can run it: go test
// builds it under a 0700 directory.
func copyExecutable(t *testing.T) string {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatalf("locating test binary: %v", err)
	}
	data, err := os.ReadFile(self)
	if err != nil {
		t.Fatalf("reading test binary: %v", err)
	}
	dir := t.TempDir()
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatalf("opening %s to other users: %v", d, err)
		}
	}
	bin := filepath.Join(dir, "privtest.test")
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatalf("copying test binary: %v", err)
	}
	return bin
}

func runAsNobody(t *testing.T, bin, test string, strictMode bool) (string, error) {
	t.Helper()
	cmd := exec.Command(bin, "-test.run=^"+test+"$", "-test.v", "-test.count=1")
	cmd.Dir = filepath.Dir(bin)
	cmd.Env = append(os.Environ(), childEnv+"=1", StrictEnv+"=")
	if strictMode {
		cmd.Env = append(cmd.Env, StrictEnv+"=1")
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func readSysctl(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("reading %s: %v", path, err)
	}
	return strings.TrimSpace(string(b))
}
