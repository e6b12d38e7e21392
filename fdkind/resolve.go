package fdkind

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Resolve classifies file descriptor fd of process pid by following its
// /proc/PID/fd link. The fd may be closed or reused between the syscall and
// this call; the error then wraps fs.ErrNotExist (ENOENT) and the caller
// should fall back to None rather than guess.
func Resolve(pid, fd int) (Kind, error) {
	link := "/proc/" + strconv.Itoa(pid) + "/fd/" + strconv.Itoa(fd)
	// Raw stat rather than os.Stat: Go maps a mode with no type bits (an
	// anonymous inode) to a "regular" FileMode.
	var st unix.Stat_t
	if err := unix.Stat(link, &st); err != nil {
		return None, fmt.Errorf("resolve fd %d of pid %d: stat %s: %w", fd, pid, link, err)
	}
	k, err := classify(st.Mode, st.Rdev, func() (string, error) { return os.Readlink(link) })
	if err != nil {
		return None, fmt.Errorf("resolve fd %d of pid %d: %w", fd, pid, err)
	}
	return k, nil
}

// classify decides a Kind from stat's mode and rdev. readlink is called
// only for the cases the mode cannot settle, so that the common regular
// file, socket and pipe cost a single syscall.
func classify(mode uint32, rdev uint64, readlink func() (string, error)) (Kind, error) {
	switch mode & unix.S_IFMT {
	case unix.S_IFSOCK:
		return Socket, nil
	case unix.S_IFIFO:
		return Pipe, nil
	case unix.S_IFDIR:
		return Other, nil
	case unix.S_IFBLK:
		return Device, nil
	case unix.S_IFCHR:
		if isTTYMajor(unix.Major(rdev)) {
			return TTY, nil
		}
		// Terminal drivers with dynamic majors (USB serial, ...) are
		// only recognisable by name.
		target, err := readlink()
		if err != nil {
			return None, err
		}
		if isTTYPath(target) {
			return TTY, nil
		}
		return Device, nil
	case unix.S_IFREG:
		// Kernels have changed what type bits anonymous inodes report,
		// and S_IFREG is among them, so only the link text tells an
		// eventfd from a file.
		target, err := readlink()
		if err != nil {
			return None, err
		}
		if isAnon(target) {
			return Other, nil
		}
		return Regular, nil
	default:
		// No type bits: an anonymous inode (eventfd, epoll, timerfd...).
		return Other, nil
	}
}

// isAnon reports whether a /proc fd link names an anonymous inode
// ("anon_inode:[eventfd]", "anon_inode:[pidfd]", ...) rather than a path.
func isAnon(target string) bool {
	return strings.HasPrefix(target, "anon_inode:")
}

// isTTYMajor reports the majors that Documentation/admin-guide/devices.txt
// assigns to terminals: 4 (virtual consoles, serial ports), 5 (/dev/tty,
// /dev/console, /dev/ptmx) and 136-143 (Unix98 pty slaves).
func isTTYMajor(major uint32) bool {
	return major == 4 || major == 5 || (major >= 136 && major <= 143)
}

func isTTYPath(target string) bool {
	return strings.HasPrefix(target, "/dev/pts/") ||
		strings.HasPrefix(target, "/dev/tty") ||
		target == "/dev/console" ||
		target == "/dev/ptmx"
}
