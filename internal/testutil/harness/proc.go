package harness

import (
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Proc is a running stallmon subcommand whose stdout is JSON.
type Proc struct {
	Cmd    *exec.Cmd
	Events *EventStream
	done   chan struct{}
	code   int
}

// Start runs bin with args until the test ends; its stderr is logged if
// the test fails.
func Start(t testing.TB, bin string, args ...string) *Proc {
	t.Helper()
	return start(t, false, nil, bin, args)
}

// StartChecked is Start with check run on every event the process logs,
// as it is read, even one the test never waits for: a pass of the suite
// with other flags asserts with it that the flags took effect. check's
// error fails the test.
func StartChecked(t testing.TB, check func(ev map[string]any) error, bin string, args ...string) *Proc {
	t.Helper()
	return start(t, false, check, bin, args)
}

// StartLogging is Start for a subcommand that writes its JSON log to
// stderr (listen --log-format json): the log's events, such as
// metrics_listening, come on Events too.
func StartLogging(t testing.TB, bin string, args ...string) *Proc {
	t.Helper()
	return start(t, true, nil, bin, args)
}

func start(t testing.TB, logEvents bool, check func(map[string]any) error, bin string, args []string) *Proc {
	t.Helper()
	cmd := exec.Command(bin, args...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if logEvents {
		// One pipe for both: whole log lines are written at once.
		cmd.Stderr = cmd.Stdout
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sp := &Proc{Cmd: cmd, Events: newEventStream(t, out, check), done: make(chan struct{})}
	go func() {
		cmd.Wait()
		sp.code = cmd.ProcessState.ExitCode()
		close(sp.done)
	}()
	t.Cleanup(func() {
		// SIGTERM first, as an operator would: stallmon cleans up what
		// it made (links, a run's cgroup) on its way out.
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-sp.done:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
		}
		<-sp.done
		if t.Failed() {
			t.Logf("stallmon %s stderr:\n%s", args[0], stderr.String())
		}
	})
	return sp
}

// Done is closed when the process has exited.
func (sp *Proc) Done() <-chan struct{} { return sp.done }

// Code is the exit status, valid once Done is closed.
func (sp *Proc) Code() int {
	<-sp.done
	return sp.code
}

// Wait returns the exit status, failing the test after timeout.
func (sp *Proc) Wait(t testing.TB, timeout time.Duration) int {
	t.Helper()
	select {
	case <-sp.done:
		return sp.code
	case <-time.After(timeout):
		t.Fatalf("stallmon still running after %v", timeout)
		return 0
	}
}
