package tracker

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// ErrNoProcess, ErrZombie and ErrNotProcess classify a bad --pid so the
// caller can report it as the user's mistake rather than a runtime failure.
var (
	ErrNoProcess  = errors.New("no such process")
	ErrZombie     = errors.New("process is a zombie")
	ErrNotProcess = errors.New("not a process that can be monitored")
)

// target is the monitored process, held through a pidfd so that neither
// exit detection nor (later) signals can reach a recycled PID.
type target struct {
	pid   int
	pidfd *os.File
}

// openTarget validates pid and opens a pidfd to it.
func openTarget(pid int) (*target, error) {
	if pid <= 0 {
		return nil, fmt.Errorf("pid %d: %w", pid, ErrNoProcess)
	}
	fd, err := unix.PidfdOpen(pid, unix.PIDFD_NONBLOCK)
	switch {
	case errors.Is(err, unix.ESRCH):
		return nil, fmt.Errorf("process %d does not exist: %w", pid, ErrNoProcess)
	case errors.Is(err, unix.ENOENT), errors.Is(err, unix.EINVAL):
		// pidfd_open refuses thread ids that are not a thread-group
		// leader: ENOENT since 6.9, EINVAL before (seen on 6.1 and 6.12).
		if tgid, terr := tgidOf(pid); terr == nil && tgid != pid {
			return nil, fmt.Errorf("%d is a thread of process %d, pass the process id: %w", pid, tgid, ErrNotProcess)
		}
		if errors.Is(err, unix.EINVAL) {
			// A leader refused: the kernel may lack the flag (before
			// 5.10, reached with --bpf-features=minimal, which skips
			// the probes); name it rather than EINVAL.
			// Only a feature found missing replaces the error: a
			// doubt, or a process reaped as it was opened, keeps it.
			if ferr := checkFeatures(); errors.Is(ferr, ErrMissingFeature) {
				return nil, ferr
			}
			return nil, fmt.Errorf("opening pidfd for %d: %w", pid, err)
		}
		return nil, fmt.Errorf("process %d does not exist: %w", pid, ErrNoProcess)
	case err != nil:
		return nil, fmt.Errorf("opening pidfd for %d: %w", pid, err)
	}
	pidfd := os.NewFile(uintptr(fd), "pidfd:"+strconv.Itoa(pid))
	// The pidfd is taken first and /proc read after: if the PID was
	// recycled in between, the checks below describe the process the
	// pidfd refers to, never an older one.
	if err := checkProc(pid); err != nil {
		pidfd.Close()
		return nil, err
	}
	return &target{pid: pid, pidfd: pidfd}, nil
}

func checkProc(pid int) error {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("process %d does not exist: %w", pid, ErrNoProcess)
	}
	if err != nil {
		return fmt.Errorf("reading state of %d: %w", pid, err)
	}
	state, flags, err := parseStat(stat)
	if err != nil {
		return fmt.Errorf("parsing /proc/%d/stat: %w", pid, err)
	}
	if state == 'Z' || state == 'X' {
		return fmt.Errorf("process %d is a zombie (it exited and was not reaped): %w", pid, ErrZombie)
	}
	const pfKthread = 0x00200000
	if flags&pfKthread != 0 {
		return fmt.Errorf("process %d is a kernel thread, it makes no syscalls: %w", pid, ErrNotProcess)
	}
	return nil
}

// parseStat returns the state letter and flags of a /proc/PID/stat line.
// The command name may contain spaces and parentheses, so fields are
// counted from the last ')'.
func parseStat(b []byte) (state byte, flags uint64, err error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 >= len(b) {
		return 0, 0, errors.New("no command name")
	}
	f := strings.Fields(string(b[i+2:]))
	// After the name: state(3) ppid pgrp session tty_nr tpgid flags(9).
	if len(f) < 7 {
		return 0, 0, errors.New("too few fields")
	}
	flags, err = strconv.ParseUint(f[6], 10, 64)
	if err != nil {
		return 0, 0, fmt.Errorf("flags: %w", err)
	}
	return f[0][0], flags, nil
}

func tgidOf(tid int) (int, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", tid))
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "Tgid:"); ok {
			return strconv.Atoi(strings.TrimSpace(v))
		}
	}
	return 0, errors.New("no Tgid line")
}

// waitExit blocks until the target has exited (its pidfd turns readable)
// or the pidfd is closed.
func (t *target) waitExit() error {
	rc, err := t.pidfd.SyscallConn()
	if err != nil {
		return err
	}
	var exited bool
	err = rc.Read(func(fd uintptr) bool {
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		n, perr := unix.Poll(fds, 0)
		exited = perr == nil && n > 0
		return exited
	})
	if err != nil {
		return err
	}
	return nil
}
