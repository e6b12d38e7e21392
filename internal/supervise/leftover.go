package supervise

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/stallmon/stallmon/internal/cgroup"
	"github.com/stallmon/stallmon/internal/event"
)

// describeDeadline bounds the /proc reads that describe a leftover's
// threads: they are for the operator, and must not keep stallmon from
// ending or starting.
const describeDeadline = 2 * time.Second

// threads describes every thread left in dir and below, one "tid comm
// state wchan" each, as far as describeDeadline allows.
func threads(dir string) []string {
	done := make(chan []string, 1)
	go func() { done <- readThreads(dir) }()
	t := time.NewTimer(describeDeadline)
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

// leftovers are the cgroups in parent that a stallmon run, since dead,
// left with processes in them: killed, but stuck in the kernel. Empty
// ones are removed.
func leftovers(parent string, log *slog.Logger) []cgroup.Dir {
	dirs, _ := filepath.Glob(filepath.Join(parent, "stallmon-run-*-*"))
	var left []cgroup.Dir
	for _, d := range dirs {
		f := strings.Split(filepath.Base(d), "-")
		pid, err := strconv.Atoi(f[2])
		if err != nil || pid == os.Getpid() {
			continue
		}
		if fd, err := unix.PidfdOpen(pid, 0); err == nil {
			unix.Close(fd) // its stallmon lives
			continue
		}
		if err := os.Remove(d); err == nil {
			log.Info(event.CgroupRemoved, "cgroup", d)
			continue
		}
		if dir, err := cgroup.Open(d); err == nil {
			if populated, err := dir.Populated(); err == nil && populated {
				left = append(left, dir)
			}
		}
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
		if populated, err := d.Populated(); err != nil || !populated {
			if err := d.Remove(); err == nil {
				cfg.Logger.Info(event.CgroupRemoved, "cgroup", d.Path)
			}
			left = left[1:]
			continue
		}
		if time.Since(lastLog) >= waitLogEvery {
			lastLog = time.Now()
			d.Kill()
			cfg.Logger.Warn(event.ServiceWaitingOld, "cgroup", d.Path, "threads", threads(d.Path),
				"waited_seconds", time.Since(start).Seconds())
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
