// Package selfprotect keeps the agent itself from being the thing that
// stalls: its memory is locked so that judging never waits on a page
// fault served from swap or a hung disk, and the OOM killer is told to
// take it after the service it guards.
package selfprotect

import (
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// OOMScoreAdj is what the agent asks for: far below the services it
// watches, not -1000 (never), so that a leak of its own is still fatal.
const OOMScoreAdj = -900

// Report says what could not be done; nil errors mean done.
type Report struct {
	LockErr, OOMAdjErr error
}

// Apply locks the process's memory, current and future pages, as they
// are touched (MCL_ONFAULT: the Go heap's reservations are not made
// resident), and, when adjustOOM, lowers its OOM score. Children inherit
// the OOM score but not the lock, so a supervisor of services passes
// adjustOOM false.
func Apply(adjustOOM bool) Report {
	var r Report
	if err := unix.Mlockall(unix.MCL_CURRENT | unix.MCL_FUTURE | unix.MCL_ONFAULT); err != nil {
		r.LockErr = fmt.Errorf("locking memory (needs CAP_IPC_LOCK): %w", err)
	}
	if adjustOOM {
		if err := os.WriteFile("/proc/self/oom_score_adj", []byte(strconv.Itoa(OOMScoreAdj)), 0); err != nil {
			r.OOMAdjErr = fmt.Errorf("lowering oom_score_adj (needs CAP_SYS_RESOURCE): %w", err)
		}
	}
	return r
}
