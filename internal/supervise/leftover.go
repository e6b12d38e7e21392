package supervise

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/stallmon/stallmon/internal/cgroup"
	"github.com/stallmon/stallmon/internal/event"
)

// DescribeDeadline bounds the /proc reads that describe a leftover's
// threads: they are for the operator, and must not keep stallmon from
// ending or starting.
const DescribeDeadline = 2 * time.Second

// threads describes every thread left in dir and below, one "tid comm
// state wchan" each, as far as DescribeDeadline allows.
func threads(dir string) []string {
	done := make(chan []string, 1)
	go func() { done <- readThreads(dir) }()
	t := time.NewTimer(DescribeDeadline)
	defer t.Stop()
	select {
	case out := <-done:
		return out
	case <-t.C:
		return []string{"(timed out reading /proc)"}
	}
}

func readThreads(dir string) []string {
	var out []string
	filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return nil
		}
		b, err := os.ReadFile(filepath.Join(path, "cgroup.threads"))
		if err != nil {
			return nil
		}
		for _, f := range strings.Fields(string(b)) {
			out = append(out, describeThread(f))
		}
		return nil
	})
	return out
}

// describeThread reads what /proc says of one thread without taking a
// lock the thread may hold: comm and state from stat, and wchan.
func describeThread(tid string) string {
	desc := tid
	if b, err := os.ReadFile("/proc/" + tid + "/stat"); err == nil {
		s := string(b)
		lp, rp := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
		if lp >= 0 && rp > lp {
			desc += " " + s[lp+1:rp]
			if f := strings.Fields(s[rp+1:]); len(f) > 0 {
				desc += " " + f[0]
			}
		}
	}
	if b, err := os.ReadFile("/proc/" + tid + "/wchan"); err == nil && len(b) > 0 && string(b) != "0" {
		desc += " " + string(b)
	}
	return desc
}

// runCgroupGlob matches the cgroups stallmon run makes for its service.
const runCgroupGlob = "stallmon-run-*-*"

// claim makes the cgroup name in parent and takes its owner's lock: an
// exclusive flock on the cgroup directory itself, held through the
// returned file (close-on-exec, so the service never inherits it) for as
// long as the incarnation runs. The kernel drops it when this stallmon
// dies, however it dies. A pid in the name cannot say whether its run
// lives: a pid reused by another process keeps a leftover "alive", a
// stallmon that is PID 1 in a container restarts with its old pid, and a
// stallmon in another pid namespace has a pid that means nothing here.
// A lock on the cgroup's inode is the same for every one of them.
//
// Another run's scan can remove the new cgroup between the mkdir and the
// lock (it is empty and unlocked then): the lock is taken, and only then
// is the path checked to still be this directory; if not, it is made
// again.
func claim(parent, name string) (cgroup.Dir, *os.File, error) {
	for range 3 {
		dir, err := cgroup.Mkdir(parent, name)
		if err != nil {
			return cgroup.Dir{}, nil, err
		}
		f, err := os.Open(dir.Path)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return cgroup.Dir{}, nil, fmt.Errorf("opening cgroup %s to lock it: %w", dir.Path, err)
		}
		// Blocking: a scan holds the lock of an unowned cgroup only while
		// it decides.
		if err := flock(f, unix.LOCK_EX); err != nil {
			f.Close()
			return cgroup.Dir{}, nil, fmt.Errorf("locking cgroup %s: %w", dir.Path, err)
		}
		if same, err := sameFile(f, dir.Path); err != nil {
			f.Close()
			return cgroup.Dir{}, nil, err
		} else if !same {
			f.Close()
			continue
		}
		return dir, f, nil
	}
	return cgroup.Dir{}, nil, fmt.Errorf("cgroup %s/%s: removed by another run as it was made, three times", parent, name)
}

func flock(f *os.File, how int) error {
	for {
		err := unix.Flock(int(f.Fd()), how)
		if err != unix.EINTR {
			return err
		}
	}
}

// sameFile reports whether path still names the directory f has open.
func sameFile(f *os.File, path string) (bool, error) {
	fi, err := f.Stat()
	if err != nil {
		return false, fmt.Errorf("cgroup %s: %w", path, err)
	}
	pi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("cgroup %s: %w", path, err)
	}
	return os.SameFile(fi, pi), nil
}

// ownerAlive reports whether the run that made the cgroup at path still
// holds its lock (see claim). It takes the lock to find out, and gives it
// back at once: a scan that kept it would make the cgroup look owned to
// every other run that waits on it.
func ownerAlive(path string) (bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return false, fmt.Errorf("opening cgroup %s: %w", path, err)
	}
	defer f.Close()
	switch err := flock(f, unix.LOCK_EX|unix.LOCK_NB); {
	case err == unix.EWOULDBLOCK:
		return true, nil
	case err != nil:
		return false, fmt.Errorf("locking cgroup %s: %w", path, err)
	}
	return false, nil
}

// leftovers are the cgroups in parent that a stallmon run, since dead,
// left with processes in them: killed, but stuck in the kernel. Empty
// ones are removed. A cgroup whose owner or contents cannot be read is
// kept, to be waited on: starting the service beside what may be a live
// instance of it is the failure stallmon exists to prevent. Only ENOENT
// (gone meanwhile) drops one.
func leftovers(parent string, log *slog.Logger) []cgroup.Dir {
	dirs, _ := filepath.Glob(filepath.Join(parent, runCgroupGlob))
	var left []cgroup.Dir
	for _, d := range dirs {
		alive, err := ownerAlive(d)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err == nil && alive {
			// This stallmon's own current cgroup, or another live run's
			// (in this pid namespace or not).
			continue
		}
		if err == nil {
			if err := os.Remove(d); err == nil {
				log.Info(event.CgroupRemoved, "cgroup", d)
				continue
			}
		}
		dir := cgroup.Dir{Path: d}
		if populated, err := dir.Populated(); err == nil && !populated || errors.Is(err, fs.ErrNotExist) {
			continue
		}
		left = append(left, dir)
	}
	return left
}

// waitLeftovers holds the start of the service while a cgroup an earlier
// run left still holds processes: a service started beside a live
// instance of itself is what fencing exists to prevent. It kills them
// (they were killed before; a pending kill changes nothing), logs the
// wait when it begins and every waitLogEvery, and tells cfg.Waiting.
// It returns false if a SIGTERM or SIGINT (or ctx) ended the wait.
func waitLeftovers(ctx context.Context, cfg Config, parent string) bool {
	left := leftovers(parent, cfg.Logger)
	if len(left) == 0 {
		return true
	}
	start := time.Now()
	tick := time.NewTicker(waitPoll)
	defer tick.Stop()
	var lastLog time.Time
	for len(left) > 0 {
		d := left[0]
		populated, perr := d.Populated()
		if errors.Is(perr, fs.ErrNotExist) || perr == nil && !populated {
			if err := d.Remove(); err == nil {
				cfg.Logger.Info(event.CgroupRemoved, "cgroup", d.Path)
			}
			left = left[1:]
			continue
		}
		// Any other error: the cgroup may still hold the old instance;
		// keep waiting, and say why in the periodic report.
		if time.Since(lastLog) >= waitLogEvery {
			lastLog = time.Now()
			if populated {
				// They were killed before; a pending kill changes nothing,
				// but one that never came (the run died first) ends them now.
				attrs := []any{"cgroup", d.Path, "signal", "SIGKILL", "reason", "leftover"}
				if err := d.Kill(); err != nil {
					attrs = append(attrs, "err", err)
				}
				cfg.Logger.Error(event.Kill, attrs...)
			}
			attrs := []any{"cgroup", d.Path, "threads", threads(d.Path), "waited_seconds", time.Since(start).Seconds()}
			if perr != nil {
				attrs = append(attrs, "err", perr)
			}
			cfg.Logger.Warn(event.ServiceWaitingOld, attrs...)
			if cfg.Waiting != nil {
				cfg.Waiting(fmt.Sprintf("cgroup %s left by an earlier run still holds processes", d.Path))
			}
		}
		select {
		case <-ctx.Done():
			return false
		case sig := <-cfg.Signals:
			if sig == syscall.SIGTERM || sig == os.Interrupt {
				return false
			}
		case <-tick.C:
		}
	}
	if cfg.Waiting != nil {
		cfg.Waiting("")
	}
	return true
}

const (
	waitPoll     = 100 * time.Millisecond
	waitLogEvery = 10 * time.Second
)
