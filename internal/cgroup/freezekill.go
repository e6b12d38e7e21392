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
// the least) is fed only between polls: a member that cannot freeze costs
// the two short waits of one round, half a second.
type freezeKillLimits struct {
	// frozen is how long a round waits for "frozen 1": a task in
	// uninterruptible sleep never freezes (it is counted frozen only in
	// the freezer's trap), so the wait gives up and the round goes on.
	frozen time.Duration
	// settle is how long a round waits, thawed, for "populated 0".
	settle time.Duration
	// total bounds all rounds: members that keep joining from outside
	// fail the kill past it.
	total time.Duration
	// afterSignals runs after each round's signals (tests make a
	// process join there).
	afterSignals func(round int)
}

var defaultFreezeKillLimits = freezeKillLimits{frozen: 250 * time.Millisecond, settle: 250 * time.Millisecond, total: time.Second}

// ErrStillJoining is a freeze-path kill that kept finding new members
// until its deadline: something outside the cgroup keeps moving
// processes into it.
var ErrStillJoining = errors.New("processes kept joining the cgroup while it was killed")

// freezeKill is Kill without cgroup.kill (kernels 5.2-5.13, which have
// cgroup.freeze): freeze the subtree, SIGKILL every member through a
// pidfd, thaw, and repeat while members appear that were not signalled.
//
// Why freezing: with cgroup.freeze set every task of the subtree has the
// freezer's trap pending and stops at its next return to user space, so
// no member runs user code again: none forks, none moves itself out. A
// clone already inside the kernel completes, but its child is born into
// the frozen cgroup with the trap pending; it is listed by the next
// round. A task in uninterruptible sleep never reaches the trap (so
// "frozen 1" may never come: the wait is bounded), but it cannot fork
// either, and on its way out of the kernel it meets the SIGKILL sent
// meanwhile before the trap. A frozen task still dies of SIGKILL: the
// trap lets fatal signals through.
//
// Why no PID can reach a stranger: PIDs are read from cgroup.procs,
// each opened as a pidfd, then cgroup.procs is read again, and only
// pidfds whose PID is still listed are signalled. pidfd_send_signal
// fails with ESRCH once the pidfd's process has been reaped; while it is
// not reaped its PID is not free, so the PID listed by the second read
// was that very process. A PID recycled before pidfd_open names a
// process that is signalled only if it too is in the cgroup. Members
// that exit meanwhile (reaped by a parent outside the cgroup) are not
// listed again, or fail with ESRCH.
//
// Cost: two reads of every cgroup.procs of the subtree and one
// pidfd_open and pidfd_send_signal per process a round, two rounds when
// nothing joins; a fd per member is held until the end. Limits: the
// cgroup is left thawed, an operator's own freeze of it included (it is
// empty then, or holds only processes the kernel has not let die yet);
// a member moved out by another process between the two reads is
// signalled all the same, as cgroup.kill would have.
func (d Dir) freezeKill(lim freezeKillLimits) (err error) {
	if err := d.Freeze(true); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			if _, serr := os.Stat(d.Path); serr == nil {
				return ErrNoKill
			}
		}
		return fmt.Errorf("freezing the cgroup to kill it: %w", err)
	}
	defer func() {
		if terr := d.Freeze(false); terr != nil && !removed(terr) {
			err = errors.Join(err, fmt.Errorf("thawing the cgroup after killing it: %w", terr))
		}
	}()
	k := killer{d: d, signalled: map[int]int{}}
	defer k.close()
	end := time.Now().Add(lim.total)
	for round := 1; ; round++ {
		if round > 1 {
			if err := d.Freeze(true); err != nil {
				return fmt.Errorf("freezing the cgroup to kill it: %w", err)
			}
		}
		if _, err := d.waitEvent("frozen", true, lim.frozen); err != nil {
			return err
		}
		if err := k.round(); err != nil {
			return err
		}
		if lim.afterSignals != nil {
			lim.afterSignals(round)
		}
		// Thawed, the killed leave faster (no trap to be woken from), and
		// the service is not left frozen should the next round fail.
		if err := d.Freeze(false); err != nil {
			return fmt.Errorf("thawing the cgroup after killing it: %w", err)
		}
		empty, err := d.waitEvent("populated", false, lim.settle)
		if err != nil || empty {
			return err
		}
		joined, err := k.unsignalled()
		if err != nil {
			return err
		}
		if !joined {
			// Everyone left was sent SIGKILL: dying, or held in the
			// kernel. The caller's kill grace judges them.
			return nil
		}
		if time.Now().After(end) {
			return fmt.Errorf("killing cgroup %s: %w", d.Path, ErrStillJoining)
		}
	}
}

// killer holds a pidfd for every process it signalled, so that a PID
// listed again can be told apart from a newcomer that reuses it.
type killer struct {
	d         Dir
	signalled map[int]int // pid -> pidfd
	pids      []int
	buf       []byte
}

// round signals every member not signalled yet.
func (k *killer) round() error {
	var err error
	if k.pids, k.buf, err = k.d.SubtreeProcs(k.pids[:0], k.buf); err != nil {
		return fmt.Errorf("listing the cgroup to kill it: %w", err)
	}
	opened := map[int]int{}
	defer func() {
		for _, fd := range opened {
			unix.Close(fd)
		}
	}()
	for _, pid := range k.pids {
		if k.known(pid) {
			continue
		}
		fd, err := unix.PidfdOpen(pid, 0)
		if errors.Is(err, unix.ESRCH) {
			continue // gone since the listing
		}
		if err != nil {
			return fmt.Errorf("opening a pidfd for %d of cgroup %s: %w", pid, k.d.Path, err)
		}
		opened[pid] = fd
	}
	if k.pids, k.buf, err = k.d.SubtreeProcs(k.pids[:0], k.buf); err != nil {
		return fmt.Errorf("listing the cgroup to kill it: %w", err)
	}
	for _, pid := range k.pids {
		fd, ok := opened[pid]
		if !ok {
			continue // joined since the first listing: the next round's
		}
		delete(opened, pid)
		if old, ok := k.signalled[pid]; ok {
			unix.Close(old)
		}
		k.signalled[pid] = fd
		err := unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0)
		if err != nil && !errors.Is(err, unix.ESRCH) {
			return fmt.Errorf("sending SIGKILL to %d of cgroup %s: %w", pid, k.d.Path, err)
		}
	}
	return nil
}

// known reports whether pid is a process already signalled: its pidfd
// still names an unreaped process, which holds the PID.
func (k *killer) known(pid int) bool {
	fd, ok := k.signalled[pid]
	return ok && unix.PidfdSendSignal(fd, 0, nil, 0) == nil
}

// unsignalled reports whether the cgroup holds a process not signalled.
func (k *killer) unsignalled() (bool, error) {
	var err error
	if k.pids, k.buf, err = k.d.SubtreeProcs(k.pids[:0], k.buf); err != nil {
		return false, fmt.Errorf("listing the cgroup to kill it: %w", err)
	}
	for _, pid := range k.pids {
		if !k.known(pid) {
			return true, nil
		}
	}
	return false, nil
}

func (k *killer) close() {
	for _, fd := range k.signalled {
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
