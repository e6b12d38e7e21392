package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"testing"

	"github.com/stallmon/stallmon/internal/e2e"
	"github.com/stallmon/stallmon/workload"
	"github.com/stallmon/stallmon/workload/workloadtest"
)

// stallmonBin is the stallmon binary built once for the tests that run it
// as a user would.
var stallmonBin string

func TestMain(m *testing.M) {
	workload.RunIfChild()
	os.Exit(e2e.RunTests(m, ".", &stallmonBin))
}

func startWorkload(t *testing.T) *workload.Proc { return workloadtest.Start(t) }

// runStallmon runs the binary to completion and returns its exit status
// and stderr.
func runStallmon(t *testing.T, setup func(*exec.Cmd), args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(stallmonBin, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if setup != nil {
		setup(cmd)
	}
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
