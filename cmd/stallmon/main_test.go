package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stallmon/stallmon/workload"
	"github.com/stallmon/stallmon/workload/workloadtest"
)

// stallmonBin is the stallmon binary built once for the tests that run it
// as a user would.
var stallmonBin string

func TestMain(m *testing.M) {
	workload.RunIfChild()
	// Inside the test VM there is no Go toolchain: the harness ships a
	// prebuilt binary and names it here.
	if bin := os.Getenv("STALLMON_BIN"); bin != "" {
		stallmonBin = bin
		os.Exit(m.Run())
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

// eventStream reads JSON events (one object per line) from a running stallmon.
type eventStream struct {
	t   *testing.T
	ch  chan map[string]any
	all []map[string]any
}

func newEventStream(t *testing.T, r io.Reader) *eventStream {
	es := &eventStream{t: t, ch: make(chan map[string]any, 1024)}
	go func() {
		defer close(es.ch)
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			var ev map[string]any
			if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
				t.Errorf("event is not one JSON object per line: %q: %v", sc.Text(), err)
				continue
			}
			es.ch <- ev
		}
	}()
	return es
}

// next returns the next event named msg, failing the test after timeout.
func (es *eventStream) next(msg string, timeout time.Duration) map[string]any {
	es.t.Helper()
	return es.nextWhere(msg, timeout, func(ev map[string]any) bool { return ev["msg"] == msg })
}

// nextAny returns the next event, whatever it is.
func (es *eventStream) nextAny(timeout time.Duration) map[string]any {
	es.t.Helper()
	return es.nextWhere("any", timeout, func(map[string]any) bool { return true })
}

func (es *eventStream) nextWhere(what string, timeout time.Duration, match func(map[string]any) bool) map[string]any {
	es.t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case ev, ok := <-es.ch:
			if !ok {
				es.t.Fatalf("event stream ended before %q; saw %v", what, es.all)
			}
			es.all = append(es.all, ev)
			if match(ev) {
				return ev
			}
		case <-deadline:
			es.t.Fatalf("no %q event within %v; saw %v", what, timeout, es.all)
		}
	}
}
