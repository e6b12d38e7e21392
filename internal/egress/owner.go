package egress

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// owner keeps the program's set of the service's socket cookies in step
// with the sockets in the service's file tables (--pid, --tree): above
// the service's own cgroup, a socket's cookie is what tells its packets
// from other processes' whatever context they are sent from. A TCP
// segment sent from softirq runs with some other task current, so
// "current" would name the wrong sender.
//
// The scan finds the sockets that existed before the gate; the program's
// own_sock_create enters each socket a process in targets creates, which
// the scan keeps filled with the service's processes, so that a socket
// made, used and closed between two scans is held too.
type owner struct {
	pid     int
	tree    bool
	owned   *ebpf.Map
	targets *ebpf.Map
	cookies map[uint64]uint64 // socket inode -> cookie, as entered
	other   map[uint64]bool   // socket inodes not gated (unix, raw, ...)
	tgids   map[uint32]bool   // as entered in targets
}

func newOwner(pid int, tree bool, owned, targets *ebpf.Map) *owner {
	return &owner{pid: pid, tree: tree, owned: owned, targets: targets,
		cookies: map[uint64]uint64{}, other: map[uint64]bool{}, tgids: map[uint32]bool{}}
}

// enterTargets makes targets the processes in pids: those found now
// entered, those gone removed. Under --tree a child forked since the last
// scan is not in it until the next: a socket it makes meanwhile is found
// by that scan if it is still open, and passes ungated if it is not.
func (o *owner) enterTargets(pids []int) error {
	var errs []error
	now := map[uint32]bool{}
	for _, pid := range pids {
		tgid := uint32(pid)
		now[tgid] = true
		if o.tgids[tgid] {
			continue
		}
		if err := o.targets.Put(tgid, uint8(1)); err != nil {
			errs = append(errs, fmt.Errorf("entering process %d: %w", pid, err))
			continue
		}
		o.tgids[tgid] = true
	}
	for tgid := range o.tgids {
		if now[tgid] {
			continue
		}
		if err := o.targets.Delete(tgid); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			errs = append(errs, fmt.Errorf("forgetting process %d: %w", tgid, err))
			continue
		}
		delete(o.tgids, tgid)
	}
	return errors.Join(errs...)
}

// scan enters the cookies of the sockets the target holds now and
// removes those of sockets it no longer holds.
func (o *owner) scan() error {
	pids := []int{o.pid}
	if o.tree {
		pids = descendants(o.pid)
	}
	seen := map[uint64]bool{}
	var errs []error
	// The processes first: a socket created from here on is entered by
	// the kernel, one created before is found below.
	if err := o.enterTargets(pids); err != nil {
		errs = append(errs, err)
	}
	for _, pid := range pids {
		if err := o.scanProcess(pid, seen); err != nil && (pid == o.pid || !errors.Is(err, os.ErrNotExist)) {
			errs = append(errs, err)
		}
	}
	for ino := range o.other {
		if !seen[ino] {
			delete(o.other, ino)
		}
	}
	for ino, c := range o.cookies {
		if seen[ino] {
			continue
		}
		if err := o.owned.Delete(c); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			errs = append(errs, fmt.Errorf("forgetting socket %d: %w", ino, err))
			continue
		}
		delete(o.cookies, ino)
	}
	return errors.Join(errs...)
}

// scanProcess enters the gated sockets in pid's file table. It goes on
// past an error, so that one socket it could not enter (a full map, a
// pidfd_getfd refused) neither leaves the later ones out nor, being
// marked seen first, has a socket already entered forgotten.
func (o *owner) scanProcess(pid int, seen map[uint64]bool) error {
	fdDir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, err := os.ReadDir(fdDir)
	if err != nil {
		return fmt.Errorf("listing %s: %w", fdDir, err)
	}
	pidfd := -1
	defer func() {
		if pidfd >= 0 {
			unix.Close(pidfd)
		}
	}()
	var errs []error
	for _, e := range ents {
		// readlink, not stat: stat would follow a file on a hung file
		// system into the kernel and wait there.
		target, err := os.Readlink(fdDir + "/" + e.Name())
		if err != nil {
			continue // closed meanwhile
		}
		ino, ok := socketInode(target)
		if !ok {
			continue
		}
		seen[ino] = true
		if _, known := o.cookies[ino]; known || o.other[ino] {
			continue
		}
		fd, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if pidfd < 0 {
			if pidfd, err = unix.PidfdOpen(pid, 0); err != nil {
				if errors.Is(err, unix.ESRCH) {
					err = fmt.Errorf("%w: %w", os.ErrNotExist, err)
				}
				return fmt.Errorf("pidfd_open %d: %w", pid, err)
			}
		}
		c, gated, err := socketCookie(pidfd, fd, ino)
		switch {
		case errors.Is(err, errReplaced):
			// Closed, or its number reused, since the listing: the
			// next scan sees what is there now.
			delete(seen, ino)
			continue
		case err != nil:
			errs = append(errs, fmt.Errorf("socket %d (fd %d) of pid %d: %w", ino, fd, pid, err))
			continue
		case !gated:
			o.other[ino] = true
			continue
		}
		if err := o.owned.Put(c, uint8(1)); err != nil {
			errs = append(errs, fmt.Errorf("entering socket %d of pid %d: %w", ino, pid, err))
			continue
		}
		o.cookies[ino] = c
	}
	return errors.Join(errs...)
}

// errReplaced is a file descriptor closed, or no longer the socket
// listed, when its copy was asked for.
var errReplaced = errors.New("file descriptor closed or replaced")

// socketCookie is the cookie of the socket ino at fd in the process of
// pidfd, and whether the gate judges its packets (IPv4 or IPv6, UDP or
// TCP). Only EBADF, and a copy that turns out to be another file, mean
// the socket went away meanwhile: every other error is one.
func socketCookie(pidfd, fd int, ino uint64) (cookie uint64, gated bool, err error) {
	dup, err := unix.PidfdGetfd(pidfd, fd, 0)
	if errors.Is(err, unix.EBADF) {
		return 0, false, errReplaced
	}
	if err != nil {
		return 0, false, fmt.Errorf("pidfd_getfd: %w", err)
	}
	defer unix.Close(dup)
	var st unix.Stat_t
	if err := unix.Fstat(dup, &st); err != nil {
		return 0, false, fmt.Errorf("fstat: %w", err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFSOCK || st.Ino != ino {
		return 0, false, errReplaced
	}
	domain, err := unix.GetsockoptInt(dup, unix.SOL_SOCKET, unix.SO_DOMAIN)
	if err != nil {
		return 0, false, fmt.Errorf("SO_DOMAIN: %w", err)
	}
	proto, err := unix.GetsockoptInt(dup, unix.SOL_SOCKET, unix.SO_PROTOCOL)
	if err != nil {
		return 0, false, fmt.Errorf("SO_PROTOCOL: %w", err)
	}
	if (domain != unix.AF_INET && domain != unix.AF_INET6) || (proto != unix.IPPROTO_UDP && proto != unix.IPPROTO_TCP) {
		return 0, false, nil
	}
	c, err := unix.GetsockoptUint64(dup, unix.SOL_SOCKET, unix.SO_COOKIE)
	if err != nil {
		return 0, false, fmt.Errorf("SO_COOKIE: %w", err)
	}
	return c, true, nil
}

func socketInode(link string) (uint64, bool) {
	s, ok := strings.CutPrefix(link, "socket:[")
	if !ok {
		return 0, false
	}
	s, ok = strings.CutSuffix(s, "]")
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseUint(s, 10, 64)
	return n, err == nil
}

// descendants is pid and every process below it, from the kernel's
// children lists.
func descendants(pid int) []int {
	out := []int{pid}
	for i := 0; i < len(out); i++ {
		tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", out[i]))
		if err != nil {
			continue
		}
		for _, t := range tasks {
			b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/children", out[i], t.Name()))
			if err != nil {
				continue
			}
			for _, f := range strings.Fields(string(b)) {
				if c, err := strconv.Atoi(f); err == nil {
					out = append(out, c)
				}
			}
		}
	}
	return out
}
