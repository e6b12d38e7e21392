package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stallmon/stallmon/workload"
	"github.com/stallmon/stallmon/workload/workloadtest"
)

// stallmonBin is the stallmon binary built once for the tests that run it
// as a user would.
var stallmonBin string

func TestMain(m *testing.M) {
	workload.RunIfChild()
	// The agents these tests start keep their incarnations and node
	// locks here, not in the host's /var/lib/stallmon.
	state, err := os.MkdirTemp("", "stallmon-state")
	if err != nil {
		panic(err)
	}
	os.Setenv("STATE_DIRECTORY", state)
	// Inside the test VM there is no Go toolchain: the harness ships a
	// prebuilt binary and names it here.
	if bin := os.Getenv("STALLMON_BIN"); bin != "" {
		stallmonBin = bin
		code := m.Run()
		os.RemoveAll(state)
		os.Exit(code)
	}
	dir, err := os.MkdirTemp("", "stallmon-bin")
	if err != nil {
		panic(err)
	}
	// World-readable so a test can run it as an unprivileged user.
	os.Chmod(dir, 0o755)
	stallmonBin = filepath.Join(dir, "stallmon")
	if out, err := exec.Command("go", "build", "-o", stallmonBin, ".").CombinedOutput(); err != nil {
		os.Stderr.Write(out)
		panic("building stallmon: " + err.Error())
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.RemoveAll(state)
	os.Exit(code)
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
