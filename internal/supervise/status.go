package supervise

import (
	"fmt"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// Status is how a service's main process ended.
type Status struct {
	Code   int            // exit code, when Signal is 0
	Signal syscall.Signal // the signal that ended it
	// Abandoned: stopping, the service outlived the kill at its stop
	// timeout by the kill's grace, and was left behind in its cgroup.
	Abandoned bool
}

func statusOf(ps *os.ProcessState) Status {
	ws, ok := ps.Sys().(syscall.WaitStatus)
	if ok && ws.Signaled() {
		return Status{Signal: ws.Signal()}
	}
	return Status{Code: ps.ExitCode()}
}

// ExitCode is the status a shell would report: the code, or 128 plus the
// signal.
func (s Status) ExitCode() int {
	if s.Signal != 0 {
		return 128 + int(s.Signal)
	}
	return s.Code
}

// Failed is a non-zero exit or death by a signal.
func (s Status) Failed() bool { return s.Signal != 0 || s.Code != 0 }

func (s Status) String() string {
	if s.Signal != 0 {
		return "killed by " + unix.SignalName(s.Signal)
	}
	return fmt.Sprintf("exit code %d", s.Code)
}
