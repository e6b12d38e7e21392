package systemd

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/stallmon/stallmon/internal/sink"
)

// Target names the service whose unit the notification is for. systemd
// attributes a notification to the unit holding the pid in its
// credentials, so that pid is chosen at send time.
type Target struct {
	// PID is the watched process (attach --pid): the unit's main process.
	PID int
	// Cgroup is the watched cgroup's absolute path (attach --cgroup).
	Cgroup string
	// With neither set, stallmon is the unit's main process (run) and
	// sends as itself: the service it starts is its child, not the
	// process systemd knows as main.
}

func (t Target) self() bool { return t.PID == 0 && t.Cgroup == "" }

// pid returns the pid to send as for verdict v.
func (t Target) pid(v sink.Verdict) (int, error) {
	switch {
	case t.self():
		return os.Getpid(), nil
	case v.PID != 0:
		return v.PID, nil
	case t.PID != 0:
		return t.PID, nil
	}
	return cgroupMainPID(t.Cgroup)
}

// cgroupMainPID picks a process of the cgroup (or below) to send as.
// Any member routes the notification to the unit, but only the main
// process passes NotifyAccess=main: prefer a process whose parent is
// outside the cgroup (the one systemd started, or a daemon re-parented
// to init), which is the main process of most services.
func cgroupMainPID(dir string) (int, error) {
	var pids []int
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			// A child cgroup removed during the walk is not an error.
			if errors.Is(err, fs.ErrNotExist) && path != dir {
				return nil
			}
			return err
		}
		if !d.IsDir() {
			return nil
		}
		b, err := os.ReadFile(filepath.Join(path, "cgroup.procs"))
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && path != dir {
				return nil
			}
			return err
		}
		for _, f := range strings.Fields(string(b)) {
			if pid, err := strconv.Atoi(f); err == nil {
				pids = append(pids, pid)
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("listing processes of cgroup %s: %w", dir, err)
	}
	if len(pids) == 0 {
		return 0, fmt.Errorf("cgroup %s has no process", dir)
	}
	in := make(map[int]bool, len(pids))
	for _, p := range pids {
		in[p] = true
	}
	for _, p := range pids {
		if ppid, err := parentPID(p); err == nil && !in[ppid] {
			return p, nil
		}
	}
	return pids[0], nil
}

// parentPID reads the fourth field of /proc/PID/stat, after the comm
// in parentheses (which may itself hold spaces and parentheses).
func parentPID(pid int) (int, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: no comm", pid)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 2 {
		return 0, fmt.Errorf("/proc/%d/stat: short", pid)
	}
	return strconv.Atoi(f[1])
}
