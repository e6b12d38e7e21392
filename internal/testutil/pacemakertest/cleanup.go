package pacemakertest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/stallmon/stallmon/internal/cgroup"
)

// Stop stops pacemakerd (which stops the resources and its daemons), then
// corosync, kills whatever is left in the cgroup, and removes the
// cgroup, the state directories and the lock.
func (c *Cluster) Stop() error {
	var errs []error
	var pids []int
	if c.cg.Path != "" {
		pids, _ = c.cg.Procs()
	}
	// Dead already if something killed them: their rings are left.
	for _, d := range []*daemon{c.corosync, c.pacemakerd} {
		if d != nil {
			pids = append(pids, d.cmd.Process.Pid)
		}
	}
	for _, s := range []struct {
		d       *daemon
		timeout time.Duration
	}{{c.pacemakerd, pacemakerdStop}, {c.corosync, corosyncStop}} {
		if s.d == nil {
			continue
		}
		s.d.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-s.d.done:
		case <-time.After(s.timeout):
			errs = append(errs, fmt.Errorf("%s did not stop within %v of SIGTERM", s.d.cmd.Args[0], s.timeout))
		}
	}
	if c.cg.Path != "" {
		if err := drain(c.cg); err != nil {
			errs = append(errs, err)
		}
	}
	removeShm(pids)
	if c.forker != nil {
		close(c.forker)
	}
	if c.dir != "" {
		if len(errs) > 0 {
			errs = append(errs, errors.New(c.Logs()))
		}
		if err := os.RemoveAll(c.dir); err != nil {
			errs = append(errs, err)
		}
	}
	if c.lock != nil {
		c.lock.Close()
	}
	return errors.Join(errs...)
}

// drain kills what is left in cg and removes it; anything left is an
// error: a daemon that did not stop when told.
func drain(cg cgroup.Dir) error {
	var errs []error
	if pids, _ := cg.Procs(); len(pids) > 0 {
		errs = append(errs, fmt.Errorf("processes left in %s after the cluster stopped, killed: %v", cg.Path, pids))
		if err := cg.Kill(); err != nil {
			errs = append(errs, err)
		}
	}
	deadline := time.Now().Add(cgroupDrainWait)
	for {
		populated, err := cg.Populated()
		if err != nil || !populated {
			break
		}
		if time.Now().After(deadline) {
			errs = append(errs, fmt.Errorf("%s still populated %v after cgroup.kill", cg.Path, cgroupDrainWait))
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := cg.Remove(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// sweep removes the cgroups of test clusters whose test binary died: the
// lock is held, so no live test owns one.
func sweep(root string) error {
	entries, err := os.ReadDir(root)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if !e.IsDir() || !strings.HasPrefix(e.Name(), cgroupPrefix) {
			continue
		}
		cg := cgroup.Dir{Path: filepath.Join(root, e.Name())}
		pids, _ := cg.Procs()
		drain(cg)
		removeShm(pids)
	}
	return nil
}

// removeShm removes the shared-memory rings (/dev/shm/qb-...) that libqb
// names after the processes of a connection: a daemon that was killed
// leaves its own behind.
func removeShm(pids []int) {
	if len(pids) == 0 {
		return
	}
	ours := map[string]bool{}
	for _, p := range pids {
		ours[strconv.Itoa(p)] = true
	}
	entries, _ := os.ReadDir("/dev/shm")
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), "qb-") {
			continue
		}
		for _, f := range strings.Split(e.Name(), "-") {
			if ours[f] {
				os.RemoveAll(filepath.Join("/dev/shm", e.Name()))
				break
			}
		}
	}
}

// running returns a process with one of the names, from /proc.
func running(names ...string) (int, string) {
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "comm"))
		if err != nil {
			continue
		}
		comm := strings.TrimSpace(string(b))
		for _, n := range names {
			if comm == n {
				return pid, n
			}
		}
	}
	return 0, ""
}

// lock takes an exclusive flock on path (a directory the package owns,
// so no file is created), polling until ctx ends.
func lock(ctx context.Context, path string) (*os.File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("pacemaker's state directory: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, lockTimeout)
	defer cancel()
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return f, nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("locking %s: %w", path, err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("another test binary holds the cluster (lock on %s): %w", path, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}
