// Package cgroup finds and uses the cgroup v2 hierarchy.
package cgroup

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// ErrNoCgroup2 reports a host without a cgroup v2 mount.
var ErrNoCgroup2 = errors.New("no cgroup2 file system mounted")

// Root returns where the cgroup v2 hierarchy is mounted, read from
// /proc/self/mountinfo: it is not always /sys/fs/cgroup (hybrid hosts
// mount it at /sys/fs/cgroup/unified). Inside a cgroup namespace the
// hierarchy seen is a subtree, whose depths are not the kernel's: that is
// refused.
func Root() (string, error) {
	if err := initialNamespace(); err != nil {
		return "", err
	}
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return "", fmt.Errorf("finding the cgroup2 mount: %w", err)
	}
	defer f.Close()
	return rootFrom(f)
}

// rootFrom parses mountinfo lines: "ID PARENT MAJ:MIN ROOT MOUNTPOINT
// OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPEROPTIONS". The mount point is
// octal-escaped (a space is \040).
func rootFrom(r io.Reader) (string, error) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		f := strings.Fields(pre)
		// The hierarchy's own root (ROOT "/"), not a bind mount of a
		// subtree: depths below it are the kernel's.
		if !ok || len(f) < 5 || strings.Fields(post)[0] != "cgroup2" || f[3] != "/" {
			continue
		}
		return unescape(f[4]), nil
	}
	if err := sc.Err(); err != nil {
		return "", fmt.Errorf("reading mountinfo: %w", err)
	}
	return "", ErrNoCgroup2
}

// unescape undoes mountinfo's octal escapes of space, tab, newline and
// backslash.
func unescape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			var v byte
			ok := true
			for _, c := range s[i+1 : i+4] {
				if c < '0' || c > '7' {
					ok = false
					break
				}
				v = v*8 + byte(c-'0')
			}
			if ok {
				b.WriteByte(v)
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// ErrCgroupNamespace reports a process outside the initial cgroup
// namespace.
var ErrCgroupNamespace = errors.New("stallmon runs in a cgroup namespace; run it in the host's")

func initialNamespace() error {
	self, err1 := os.Readlink("/proc/self/ns/cgroup")
	host, err2 := os.Readlink("/proc/1/ns/cgroup")
	if err1 != nil || err2 != nil {
		// No cgroup namespaces, or no sight of pid 1's: nothing to
		// compare, and the mount's ROOT field still has to be "/".
		return nil
	}
	if self != host {
		return ErrCgroupNamespace
	}
	return nil
}
