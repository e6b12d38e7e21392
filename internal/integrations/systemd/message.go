package systemd

import (
	"fmt"
	"strings"

	"github.com/stallmon/stallmon/internal/sink"
)

// maxStatus bounds the STATUS= text: systemd shows it in one line of
// systemctl status.
const maxStatus = 256

// triggerMessage is the datagram for a stall. STATUS= comes first so
// that systemd logs it with the watchdog request ("Watchdog request
// (last status: ...)!"): it handles STATUS= before WATCHDOG= within one
// datagram.
func triggerMessage(v sink.Verdict) string {
	return "STATUS=" + clean(statusText(v)) + "\nWATCHDOG=trigger"
}

func statusText(v sink.Verdict) string {
	st := v.Stall
	if st == nil {
		return "stallmon: stalled"
	}
	what := "stuck in " + st.Syscall
	switch {
	case st.Reason == "stopped":
		// Not the kernel's doing: a signal (SIGSTOP, a job-control
		// stop) holds it, and SIGCONT would let it go on.
		what = "stopped"
	case st.Reason == "traced":
		what = "held by a tracer"
	case st.Reason == "frozen":
		what = "frozen by the cgroup freezer"
	case st.Syscall == "none" || st.Syscall == "":
		what = "stuck in the kernel outside any syscall"
	}
	return fmt.Sprintf("stallmon: thread %d (%s) of pid %d %s for %.1fs (%s)",
		st.TID, st.Comm, st.PID, what, st.Elapsed.Seconds(), st.Reason)
}

// clean keeps the text on one line: a thread names itself (comm), and a
// newline in it would add a line of its own choosing to the datagram,
// which systemd would read as another field (MAINPID=, READY=...).
func clean(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return '?'
		}
		return r
	}, s)
	if len(s) > maxStatus {
		s = strings.ToValidUTF8(s[:maxStatus], "")
	}
	return s
}
