package privtest

import (
	"fmt"
	"os"
	"os/exec"
	"testing"
)

// RequireCommand returns the path of the named program, or skips t when
// it is not installed (fails it when StrictEnv=1: `make test` installs
// every program the tests need, so in CI a missing one is a bug).
func RequireCommand(t testing.TB, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		unavailable(t, fmt.Sprintf("needs %s (make deps-test installs it): %v", name, err))
		return ""
	}
	return path
}

// RequireFile skips t when path does not exist (fails it when
// StrictEnv=1); hint says what creates it.
func RequireFile(t testing.TB, path, hint string) {
	t.Helper()
	if _, err := os.Stat(path); err != nil {
		unavailable(t, fmt.Sprintf("needs %s (%s): %v", path, hint, err))
	}
}
