package tracker

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// ExitStatus is how the target ended, as wait(2) would tell its parent.
// stallmon is not the parent, so it learns this from the kernel side.
type ExitStatus struct {
	Code       int         // exit code, when !Signaled
	Signal     unix.Signal // terminating signal, when Signaled
	Signaled   bool
	CoreDumped bool
}

func (e ExitStatus) String() string {
	if e.Signaled {
		return fmt.Sprintf("killed by signal %d (%s)", int(e.Signal), unix.SignalName(e.Signal))
	}
	return fmt.Sprintf("exit code %d", e.Code)
}

// ExitStatus returns the target's exit status, once a thread of it has
// exited; ok is false before that, and always for a cgroup or a tree,
// whose processes have one status each. Meaningful after Done is closed.
func (m *Tracker) ExitStatus() (st ExitStatus, ok bool, err error) {
	if !m.scope.single() {
		return ExitStatus{}, false, nil
	}
	var exited, status uint32
	if err := m.objs.Exited.Get(&exited); err != nil {
		return ExitStatus{}, false, fmt.Errorf("reading exit flag: %w", err)
	}
	if exited == 0 {
		return ExitStatus{}, false, nil
	}
	if err := m.objs.ExitStatus.Get(&status); err != nil {
		return ExitStatus{}, false, fmt.Errorf("reading exit status: %w", err)
	}
	ws := unix.WaitStatus(status)
	switch {
	case ws.Exited():
		return ExitStatus{Code: ws.ExitStatus()}, true, nil
	case ws.Signaled():
		return ExitStatus{Signaled: true, Signal: ws.Signal(), CoreDumped: ws.CoreDump()}, true, nil
	}
	return ExitStatus{}, false, nil
}
