package harness

import (
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"testing"
)

// BinEnv names a prebuilt stallmon binary for Setup to use instead of
// building one: inside a test VM there is no Go toolchain.
const BinEnv = "STALLMON_BIN"

// Package is the stallmon command's import path.
const Package = "github.com/stallmon/stallmon/cmd/stallmon"

// RunTests is TestMain's work for a test binary whose tests run stallmon
// as a user does: it sets *bin to the stallmon binary, runs the tests and
// returns their exit code. The agents the tests start keep their
// incarnations and node locks in a temporary STATE_DIRECTORY, not in the
// host's /var/lib/stallmon; stallmon is built from cmd/stallmon unless
// $STALLMON_BIN names a binary.
func RunTests(m *testing.M, bin *string) int {
	b, cleanup, err := setUp()
	if err != nil {
		panic(err)
	}
	defer cleanup()
	*bin = b
	return m.Run()
}

func setUp() (bin string, cleanup func(), err error) {
	state, err := os.MkdirTemp("", "stallmon-state")
	if err != nil {
		return "", nil, err
	}
	os.Setenv("STATE_DIRECTORY", state)
	if bin := os.Getenv(BinEnv); bin != "" {
		return bin, func() { os.RemoveAll(state) }, nil
	}
	dir, err := os.MkdirTemp("", "stallmon-bin")
	if err != nil {
		os.RemoveAll(state)
		return "", nil, err
	}
	cleanup = func() {
		os.RemoveAll(dir)
		os.RemoveAll(state)
	}
	// World-readable so a test can run it as an unprivileged user.
	if err := os.Chmod(dir, 0o755); err != nil {
		cleanup()
		return "", nil, err
	}
	if bin, err = build(dir, Package); err != nil {
		cleanup()
		return "", nil, err
	}
	return bin, cleanup, nil
}

// tablePathVar is the stallmon command's default timeout table path.
const tablePathVar = "main.defaultTablePath"

// build builds the command at pkg (an import path) into dir. A stallmon
// built here reads its default table from dir/etc/budgets.yaml, where
// nothing is, so a table the host has in /etc/stallmon never changes
// what the tests see.
func build(dir, pkg string) (string, error) {
	return buildStallmon(dir, pkg, filepath.Join(dir, "etc", "budgets.yaml"))
}

func buildStallmon(dir, pkg, tablePath string, flags ...string) (string, error) {
	bin := filepath.Join(dir, path.Base(pkg))
	args := append([]string{"build", "-o", bin}, flags...)
	if pkg == Package {
		args = append(args, "-ldflags", "-X "+tablePathVar+"="+tablePath)
	}
	if out, err := exec.Command("go", append(args, pkg)...).CombinedOutput(); err != nil {
		return "", fmt.Errorf("building %s: %w\n%s", pkg, err, out)
	}
	return bin, nil
}

// BuildWithTablePath builds stallmon for t with its default table path
// (/etc/stallmon/budgets.yaml as shipped) at tablePath.
func BuildWithTablePath(t testing.TB, tablePath string) string {
	t.Helper()
	bin, err := buildStallmon(t.TempDir(), Package, tablePath)
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// BuildForTests builds stallmon with -tags stallmontest, which compiles
// in the test hooks (internal/cgroup's force_stallmontest.go) that the
// shipped binary has none of.
func BuildForTests(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	bin, err := buildStallmon(dir, Package, filepath.Join(dir, "etc", "budgets.yaml"), "-tags", "stallmontest")
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// Build builds the command at pkg (an import path) for t, and returns
// the binary's path; it goes with t.
func Build(t testing.TB, pkg string) string {
	t.Helper()
	bin, err := build(t.TempDir(), pkg)
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// Stallmon is the stallmon binary for t: $STALLMON_BIN when set (a test
// VM has no Go toolchain), else one built for t.
func Stallmon(t testing.TB) string {
	t.Helper()
	if bin := os.Getenv(BinEnv); bin != "" {
		return bin
	}
	return Build(t, Package)
}
