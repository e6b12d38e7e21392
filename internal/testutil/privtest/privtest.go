// Package privtest lets tests that need root or kernel features skip on a
// developer machine but fail loudly in CI, where a silent skip would let the
// privileged half of the suite rot unnoticed.
package privtest

import (
	"fmt"
	"os"
	"testing"
)

// StrictEnv names the variable CI sets to 1 so that a missing privilege
// fails the test instead of skipping it.
const StrictEnv = "STALLMON_REQUIRE_PRIVILEGED"

// Require skips t unless the process runs with effective uid 0, or fails it
// when StrictEnv=1.
func Require(t testing.TB) {
	t.Helper()
	if euid := os.Geteuid(); euid != 0 {
		unavailable(t, fmt.Sprintf("needs root (euid is %d)", euid))
	}
}

// RequireUserfaultfd skips t unless this process may create a userfaultfd
// that also handles faults taken inside the kernel (what a read(2) into a
// registered page needs), or fails it when StrictEnv=1.
func RequireUserfaultfd(t testing.TB) {
	t.Helper()
	if err := probeUserfaultfd(); err != nil {
		unavailable(t, fmt.Sprintf("needs userfaultfd: %v", err))
	}
}

// strict is read on every call rather than once so a test can flip it.
func strict() bool { return os.Getenv(StrictEnv) == "1" }

// Unavailable skips t for reason, or fails it when StrictEnv=1: for a
// missing component that CI installs (a service from Debian's packages).
// It must be the last call on its path.
func Unavailable(t testing.TB, reason string) {
	t.Helper()
	unavailable(t, reason)
}

// unavailable must be the last call on its path: with a fake testing.TB,
// Skipf and Fatalf return instead of ending the goroutine.
func unavailable(t testing.TB, reason string) {
	t.Helper()
	if strict() {
		t.Fatalf("%s, and %s=1 forbids skipping", reason, StrictEnv)
		return
	}
	t.Skipf("%s (set %s=1 to fail instead)", reason, StrictEnv)
}
