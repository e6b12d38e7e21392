package cgroup

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// forceFreezeKill makes Kill take the freeze path even where cgroup.kill
// exists, so that the path for 5.2-5.13 kernels runs on any kernel. Only
// tests set it (export_test.go, and the stallmontest build of the binary).
var forceFreezeKill atomic.Bool

// freezeKillDone, when set (by the stallmontest build), hears of every
// freeze-path kill.
var freezeKillDone func(Dir, error)

// freezeKillLimits bound the freeze path in time: Kill runs on the
// agent's fence, where the heartbeat is already off and the kill grace
// follows, but where a node fencer's watchdog (--watchdog-timeout, 1 s at
// the least) is fed only between polls. Every wait takes no more than
// what is left of total.
type freezeKillLimits struct {
	// frozen is how long the kill waits for "frozen 1": a task in
	// uninterruptible sleep never freezes (it is counted frozen only in
	// the freezer's trap), so the wait gives up and the kill goes on.
	frozen time.Duration
	// total bounds the whole kill: members that keep joining from
	// outside fail it past this.
	total time.Duration
	// afterSignals runs after each round's signals (tests make a
	// process join there).
	afterSignals func(round int)
	// afterOpen runs between a batch's pidfd_opens and the listing that
	// confirms them (tests take a member out there).
	afterOpen func()
}

var defaultFreezeKillLimits = freezeKillLimits{frozen: 250 * time.Millisecond, total: time.Second}

// ErrStillJoining is a freeze-path kill that kept finding new members
// until its deadline: something outside the cgroup keeps moving
// processes into it.
var ErrStillJoining = errors.New("processes kept joining the cgroup while it was killed")

// ErrOutsidePidNamespace is a member listed as PID 0: it lives outside
// stallmon's pid namespace, and no pidfd can be opened for it from here.
var ErrOutsidePidNamespace = errors.New("processes outside stallmon's pid namespace (listed as pid 0) cannot be signalled through a pidfd from here")

// freezeKill is Kill without cgroup.kill (kernels 5.2-5.13, which have
// cgroup.freeze): freeze the subtree, SIGKILL every member through a
// pidfd, list again and signal whoever was not, until a listing shows
// no member left unsignalled, and only then thaw.
//
// Why freezing: with cgroup.freeze set every task of the subtree has the
// freezer's trap pending and stops at its next return to user space, so
// no member runs user code again: none forks, none moves itself out. A
// clone already inside the kernel completes, but its child is born into
// the frozen cgroup with the trap pending, as is a process moved in from
// outside: the next listing finds it, still frozen. A task in
// uninterruptible sleep never reaches the trap (so "frozen 1" may never
// come: the wait is bounded), but it cannot fork either, and on its way
// out of the kernel it meets the SIGKILL sent meanwhile before the trap.
// A frozen task still dies of SIGKILL: the trap lets fatal signals
// through.
//
// Why no PID can reach a stranger: PIDs are read from cgroup.procs,
// each opened as a pidfd, then cgroup.procs is read again, and only
// pidfds whose PID is still listed are signalled. pidfd_send_signal
// fails with ESRCH once the pidfd's process has been reaped; while it is
// not reaped its PID is not free, so the PID listed by the second read
// was that very process. A PID recycled before pidfd_open names a
// process that is signalled only if it too is in the cgroup.
//
// Why no member spares the others: pidfds are opened in batches that
// fit the free descriptors (a batch that ran out signals what it opened
// and closes it before the next), and a member whose pidfd cannot be
// opened or signalled is skipped and named in the error, never a reason
// to stop. Members listed as PID 0 (outside stallmon's pid namespace)
// cannot be reached at all: ErrOutsidePidNamespace.
//
// Cost: two reads of every cgroup.procs of the subtree and one
// pidfd_open and pidfd_send_signal per process, plus one listing per
// round to find newcomers; a fd per member is held until the end while
// descriptors last (past that, the member's start time from /proc tells
// it from a newcomer reusing its PID). Limits: the cgroup is left
// thawed, an operator's own freeze of it included; a member moved out by
// another process between the two reads is signalled all the same, as
// cgroup.kill would have.
func (d Dir) freezeKill(lim freezeKillLimits) (err error) {
	end := time.Now().Add(lim.total)
	if err := d.Freeze(true); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			if _, serr := os.Stat(d.Path); serr == nil {
				return ErrNoKill
			}
		}
		return fmt.Errorf("freezing the cgroup to kill it: %w", err)
	}
	defer func() {
		if terr := d.thaw(); terr != nil && !removed(terr) {
			err = errors.Join(err, fmt.Errorf("thawing the cgroup after killing it: %w", terr))
		}
	}()
	k := killer{d: d, afterOpen: lim.afterOpen, held: map[int]int{}, dropped: map[int]string{}, failed: map[int]error{}}
	defer k.close()
	if _, err := d.waitEvent("frozen", true, min(lim.frozen, time.Until(end))); err != nil {
		return err
	}
	for round := 1; ; round++ {
		if err := k.round(); err != nil {
			return err
		}
		if lim.afterSignals != nil {
			lim.afterSignals(round)
		}
		// Still frozen: a newcomer has not run user code since it came.
		left, err := k.unsignalled()
		if err != nil {
			return err
		}
		if !left {
			// Everyone left was sent SIGKILL: dying, or held in the
			// kernel. The caller's kill grace judges them; the deferred
			// thaw lets the killed leave faster.
			return k.unreached()
		}
		if time.Now().After(end) {
			return errors.Join(fmt.Errorf("killing cgroup %s: %w", d.Path, ErrStillJoining), k.unreached())
		}
	}
}

// thawTries bounds thaw's confirmations, thawWait each one's wait.
const (
	thawTries = 3
	thawWait  = 20 * time.Millisecond
)

// thaw thaws the cgroup and confirms it in cgroup.events. An emptied
// cgroup was once seen to keep "frozen 1" after its thaw
// (TestFreezeKillEmptiesTheCgroup, members exiting while frozen, a child
// cgroup still dying; presumably the kernel skipped the parent's update
// while the child was not counted frozen); freezing and thawing again
// makes the kernel revisit the subtree.
func (d Dir) thaw() error {
	for try := 1; ; try++ {
		if err := d.Freeze(false); err != nil {
			return err
		}
		thawed, err := d.waitEvent("frozen", false, thawWait)
		if err != nil || thawed || try == thawTries {
			return err
		}
		if err := d.Freeze(true); err != nil {
			return err
		}
	}
}

// fdReserve is what a batch of pidfds leaves free for the kill's own
// files: the listing's directory and cgroup.procs, a /proc stat file.
const fdReserve = 4

// killer remembers every process it signalled, so that a PID listed
// again can be told apart from a newcomer that reuses it: by a pidfd
// it holds, or, once descriptors ran out, by the start time /proc gave.
type killer struct {
	d         Dir
	afterOpen func()
	held      map[int]int    // pid -> pidfd
	dropped   map[int]string // pid -> start time, its pidfd closed
	failed    map[int]error  // pids no pidfd could reach
	outside   bool           // a member was listed as pid 0
	pids      []int
	todo      []int
	buf       []byte
}

// round signals every listed member not signalled yet, batch by batch.
func (k *killer) round() error {
	var err error
	if k.pids, k.buf, err = k.d.SubtreeProcs(k.pids[:0], k.buf); err != nil {
		return fmt.Errorf("listing the cgroup to kill it: %w", err)
	}
	k.todo = k.todo[:0]
	for _, pid := range k.pids {
		if k.pending(pid) {
			k.todo = append(k.todo, pid)
		}
	}
	for todo := k.todo; len(todo) > 0; {
		n, err := k.batch(todo)
		if err != nil {
			return err
		}
		todo = todo[n:]
	}
	return nil
}

// pending reports whether pid is a member still to be signalled.
func (k *killer) pending(pid int) bool {
	if pid == 0 {
		k.outside = true
		return false
	}
	_, failed := k.failed[pid]
	return !failed && !k.known(pid)
}

// batch opens pidfds for as many of todo as descriptors allow, lists
// the cgroup again, signals those still listed, and returns how many of
// todo it dealt with.
func (k *killer) batch(todo []int) (int, error) {
	opened := map[int]int{}
	var at []int // index in todo of each pidfd opened, in order
	full := false
	n := 0
	for i, pid := range todo {
		fd, err := unix.PidfdOpen(pid, 0)
		if errors.Is(err, unix.EMFILE) || errors.Is(err, unix.ENFILE) {
			full = true
			break
		}
		n = i + 1
		switch {
		case errors.Is(err, unix.ESRCH):
			// gone since the listing
		case err != nil:
			k.failed[pid] = fmt.Errorf("opening a pidfd for %d: %w", pid, err)
		default:
			opened[pid] = fd
			at = append(at, i)
		}
	}
	if full {
		// Give back room for the listing and the /proc reads: the
		// last pidfds opened wait for the next batch.
		if len(at) <= fdReserve {
			for _, fd := range opened {
				unix.Close(fd)
			}
			return 0, fmt.Errorf("killing cgroup %s: no file descriptor free to open a pidfd for %d members", k.d.Path, len(todo))
		}
		n = at[len(at)-fdReserve]
		for _, i := range at[len(at)-fdReserve:] {
			unix.Close(opened[todo[i]])
			delete(opened, todo[i])
		}
	}
	defer func() {
		for _, fd := range opened {
			unix.Close(fd)
		}
	}()
	if k.afterOpen != nil {
		k.afterOpen()
	}
	var err error
	if k.pids, k.buf, err = k.d.SubtreeProcs(k.pids[:0], k.buf); err != nil {
		return 0, fmt.Errorf("listing the cgroup to kill it: %w", err)
	}
	for _, pid := range k.pids {
		fd, ok := opened[pid]
		if !ok {
			continue // joined since: the next listing finds it
		}
		delete(opened, pid)
		start := ""
		if full {
			// Read while the pidfd holds the PID; the signal below
			// proves the process was not reaped before the read.
			start = startTime(pid)
		}
		err := unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0)
		switch {
		case errors.Is(err, unix.ESRCH):
			unix.Close(fd)
			continue
		case err != nil:
			unix.Close(fd)
			k.failed[pid] = fmt.Errorf("sending SIGKILL to %d: %w", pid, err)
			continue
		}
		if old, ok := k.held[pid]; ok {
			unix.Close(old)
			delete(k.held, pid)
		}
		if full {
			unix.Close(fd)
			k.dropped[pid] = start
		} else {
			k.held[pid] = fd
			delete(k.dropped, pid)
		}
	}
	return n, nil
}

// known reports whether pid is a process already signalled.
func (k *killer) known(pid int) bool {
	if fd, ok := k.held[pid]; ok {
		// Its pidfd still names an unreaped process, which holds the PID.
		return unix.PidfdSendSignal(fd, 0, nil, 0) == nil
	}
	start, ok := k.dropped[pid]
	return ok && start != "" && startTime(pid) == start
}

// startTime is field 22 of /proc/PID/stat, the process's start in clock
// ticks since boot: with the PID it names one process. Empty if unread.
func startTime(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ""
	}
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return ""
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 {
		return ""
	}
	return f[19]
}

// unsignalled reports whether the cgroup holds a member still to be
// signalled.
func (k *killer) unsignalled() (bool, error) {
	var err error
	if k.pids, k.buf, err = k.d.SubtreeProcs(k.pids[:0], k.buf); err != nil {
		return false, fmt.Errorf("listing the cgroup to kill it: %w", err)
	}
	for _, pid := range k.pids {
		if k.pending(pid) {
			return true, nil
		}
	}
	return false, nil
}

// unreached names the members the kill could not signal.
func (k *killer) unreached() error {
	var errs []error
	if k.outside {
		errs = append(errs, ErrOutsidePidNamespace)
	}
	for _, err := range k.failed {
		errs = append(errs, err)
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("killing cgroup %s: members left unsignalled: %w", k.d.Path, errors.Join(errs...))
}

func (k *killer) close() {
	for _, fd := range k.held {
		unix.Close(fd)
	}
}

// waitEvent waits up to timeout for cgroup.events to show key at want,
// woken by the kernel's notification on the file, and reports whether it
// did. A removed cgroup is empty and thawed.
func (d Dir) waitEvent(key string, want bool, timeout time.Duration) (bool, error) {
	f, err := os.Open(filepath.Join(d.Path, "cgroup.events"))
	if removed(err) {
		return key == "populated" && !want, nil
	}
	if err != nil {
		return false, fmt.Errorf("watching cgroup %s: %w", d.Path, err)
	}
	defer f.Close()
	end := time.Now().Add(timeout)
	buf := make([]byte, 256)
	for {
		n, err := f.ReadAt(buf, 0)
		if n == 0 && err != nil {
			if removed(err) {
				return key == "populated" && !want, nil
			}
			return false, fmt.Errorf("reading cgroup %s's events: %w", d.Path, err)
		}
		v, err := parseEvent(string(buf[:n]), key)
		if err != nil {
			return false, err
		}
		if v == want {
			return true, nil
		}
		left := time.Until(end)
		if left <= 0 {
			return false, nil
		}
		fds := []unix.PollFd{{Fd: int32(f.Fd()), Events: unix.POLLPRI}}
		if _, err := unix.Poll(fds, int(left.Milliseconds())+1); err != nil && !errors.Is(err, unix.EINTR) {
			return false, fmt.Errorf("waiting on cgroup %s's events: %w", d.Path, err)
		}
	}
}

// parseEvent reads the line key of a cgroup.events file.
func parseEvent(events, key string) (bool, error) {
	for line := range strings.Lines(events) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), key+" "); ok {
			return v == "1", nil
		}
	}
	return false, fmt.Errorf("no %s line in cgroup.events: %q", key, events)
}
