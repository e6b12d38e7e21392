package e2e

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"testing"

	"github.com/stallmon/stallmon/internal/testutil/harness"
	"github.com/stallmon/stallmon/internal/testutil/repo"
	"github.com/stallmon/stallmon/internal/testutil/workloadtest"
	"github.com/stallmon/stallmon/internal/workload"
)

// stallmonBin is the stallmon binary built once for the tests that run it
// as a user would.
var stallmonBin string

// root is the source tree's root, for the shipped files the tests run
// (deploy/) and the documents they check.
var root = func() string {
	dir, err := repo.Find()
	if err != nil {
		panic(err)
	}
	return dir
}()

func TestMain(m *testing.M) {
	workload.RunIfChild()
	os.Exit(harness.RunTests(m, &stallmonBin))
}

func startWorkload(t *testing.T) *workload.Proc { return workloadtest.Start(t) }

// runStallmon runs the binary to completion and returns its exit status
// and stderr.
func runStallmon(t *testing.T, setup func(*exec.Cmd), args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(stallmonBin, args...)
	if setup != nil {
		setup(cmd)
	}
	return runCmd(t, cmd)
}

// runStallmonContext is runStallmon, killed when ctx ends.
func runStallmonContext(t *testing.T, ctx context.Context, args ...string) (int, string) {
	t.Helper()
	return runCmd(t, exec.CommandContext(ctx, stallmonBin, args...))
}

func runCmd(t *testing.T, cmd *exec.Cmd) (int, string) {
	t.Helper()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, stderr.String()
	case errors.As(err, &ee):
		return ee.ExitCode(), stderr.String()
	}
	t.Fatalf("running stallmon: %v", err)
	return 0, ""
}

// stallmon's exit statuses, as its documentation promises them.
const (
	exitOK         = 0
	exitRuntime    = 1
	exitUsage      = 2
	exitKilled     = 3
	exitUnkillable = 4
)
