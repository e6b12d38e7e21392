// Package supervise runs a service under stallmon: each start of it (an
// incarnation) goes straight into a cgroup that stallmon watches already,
// so its first instruction is watched, and it is started again, by
// policy, after it ends or stallmon kills it.
package supervise

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"syscall"
	"time"

	"github.com/stallmon/stallmon/internal/agent"
	"github.com/stallmon/stallmon/internal/cgroup"
	"github.com/stallmon/stallmon/internal/event"
)

// Config configures Run.
type Config struct {
	Command []string
	// CgroupParent is where the service's cgroup is made; "" is
	// stallmon's own cgroup.
	CgroupParent string
	Restart      Policy
	// MaxRestarts bounds the restarts; 0 means no bound.
	MaxRestarts int
	// RestartDelay is the first restart's delay; it doubles at each
	// restart in a row, up to 32 times, and starts over once the service
	// ran for StableAfter.
	RestartDelay time.Duration
	StableAfter  time.Duration
	// Signals are forwarded to the service's main process: SIGTERM and
	// SIGINT also end the supervision once the service is gone, and a
	// service still there StopTimeout later is killed.
	Signals     <-chan os.Signal
	StopTimeout time.Duration
	// KillGrace is how long the kill at StopTimeout may take: a service
	// still there after it is abandoned (Status.Abandoned).
	KillGrace time.Duration
	// Waiting, when set, hears why the service cannot start yet (a
	// cgroup an earlier run left still holds processes), and "" once it
	// can.
	Waiting func(reason string)
	Stdin   io.Reader
	Stdout  io.Writer
	Stderr  io.Writer
	Logger  *slog.Logger
}

// Watcher watches one incarnation (stallmon's agent over a tracker of the
// service's cgroup, made before the service starts).
type Watcher interface {
	// Started says the service's main process was started in the cgroup.
	Started()
	// Run judges the service until its cgroup is empty, and fences it.
	Run(ctx context.Context) (agent.Outcome, error)
	// Abandon makes Run, once its context is done, end without a last
	// word on the heartbeat: the service outlived its stop.
	Abandon()
	// Fenced says the service was killed (or exited): Run returns once
	// its cgroup is empty.
	Fenced() bool
	Close() error
}

// WatchFunc makes the Watcher of one incarnation for the cgroup at path.
type WatchFunc func(path string) (Watcher, error)

// Run supervises the service until it ends for good and returns how its
// last incarnation's main process ended.
func Run(ctx context.Context, cfg Config, watch WatchFunc) (Status, error) {
	if len(cfg.Command) == 0 {
		return Status{}, errors.New("no command to run")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	parent, err := cgroupParent(cfg.CgroupParent)
	if err != nil {
		return Status{}, err
	}
	if cfg.KillGrace <= 0 {
		cfg.KillGrace = 5 * time.Second
	}
	restarts, inRow := 0, 0
	for {
		// Never beside a live instance: a run that died (SIGKILL, or
		// exited after abandoning an unkillable service) may have left
		// one, stuck in the kernel, in its cgroup.
		if !waitLeftovers(ctx, cfg, parent) {
			return Status{}, nil
		}
		// A cgroup of its own for each incarnation: a kernel (6.18 here)
		// kills at once a process cloned into a cgroup that cgroup.kill
		// was used on before, and each start deserves a clean slate.
		dir, lock, err := claim(parent, fmt.Sprintf("stallmon-run-%d-%d", os.Getpid(), restarts+1))
		if err != nil {
			return Status{}, err
		}
		inc, err := runOnce(ctx, cfg, dir, watch, restarts+1)
		if inc.status.Abandoned {
			// Still populated: given up, so no longer owned. The lock
			// goes now, not when this process exits: any run that
			// scans meanwhile must wait for it to empty, not take it
			// for a live run's and start beside it.
			lock.Close()
			return inc.status, err
		}
		if rerr := dir.Remove(); rerr != nil && err == nil {
			cfg.Logger.Warn(event.CgroupRemoveFailed, "err", rerr)
		}
		lock.Close()
		if err != nil {
			return Status{}, err
		}
		restartable := !inc.stopped && (cfg.Restart == Always ||
			(cfg.Restart == OnFailure && (inc.status.Failed() || inc.outcome == agent.TargetKilled || inc.outcome == agent.TargetUnkillable)))
		if !restartable {
			return inc.status, nil
		}
		if cfg.MaxRestarts > 0 && restarts >= cfg.MaxRestarts {
			cfg.Logger.Error(event.ServiceGaveUp, "restarts", restarts, "status", inc.status.String())
			return inc.status, nil
		}
		if inc.ran >= cfg.StableAfter {
			inRow = 0
		}
		restarts++
		inRow++
		delay := backoff(cfg.RestartDelay, inRow)
		cfg.Logger.Warn(event.ServiceRestart, "restart", restarts, "delay_seconds", delay.Seconds(), "status", inc.status.String())
		if stop := sleep(ctx, cfg.Signals, delay); stop {
			return inc.status, nil
		}
	}
}

// cgroupParent is where the service's cgroups are made: parent, or
// stallmon's own cgroup.
func cgroupParent(parent string) (string, error) {
	if parent == "" {
		own, err := cgroup.Own()
		if err != nil {
			return "", err
		}
		return own.Path, nil
	}
	p, err := cgroup.Open(parent)
	if err != nil {
		return "", fmt.Errorf("--cgroup-parent: %w", err)
	}
	return p.Path, nil
}

// incarnation is how one start of the service ended.
type incarnation struct {
	status  Status
	outcome agent.Outcome
	stopped bool // a SIGTERM or SIGINT was forwarded: no restart
	ran     time.Duration
}

func runOnce(ctx context.Context, cfg Config, dir cgroup.Dir, watch WatchFunc, n int) (incarnation, error) {
	w, err := watch(dir.Path)
	if err != nil {
		return incarnation{}, err
	}
	defer w.Close()
	cgfd, err := os.Open(dir.Path)
	if err != nil {
		return incarnation{}, fmt.Errorf("opening the service's cgroup: %w", err)
	}
	cmd := exec.Command(cfg.Command[0], cfg.Command[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = cfg.Stdin, cfg.Stdout, cfg.Stderr
	// Straight into the cgroup (clone3 CLONE_INTO_CGROUP): the watch is
	// in place before the service's first instruction.
	// Pdeathsig: should stallmon die, its service dies too. Nobody
	// would judge it any more, the heartbeat has stopped and peers take
	// over: a service left running is what fencing exists to prevent.
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: int(cgfd.Fd()), Pdeathsig: syscall.SIGKILL}
	started := time.Now()
	err = cmd.Start()
	cgfd.Close()
	w.Started()
	if err != nil {
		return incarnation{}, fmt.Errorf("starting %s: %w", cfg.Command[0], err)
	}
	cfg.Logger.Info(event.ServiceStarted, "incarnation", n, "pid", cmd.Process.Pid, "cgroup", dir.Path, "command", cfg.Command)

	type result struct {
		outcome agent.Outcome
		err     error
	}
	judged := make(chan result, 1)
	// Not ended by ctx: the agent judges the service until its cgroup
	// empties; only an abandoned service ends it early.
	actx, stopAgent := context.WithCancel(context.WithoutCancel(ctx))
	defer stopAgent()
	go func() {
		o, err := w.Run(actx)
		judged <- result{o, err}
	}()
	mainDone := make(chan struct{})
	go func() {
		cmd.Wait()
		close(mainDone)
	}()

	var inc incarnation
	var stopping, abandon <-chan time.Time
	// A service stallmon killed that does not die holds up the next
	// start: said now and then, not only in the agent's unkillable report.
	check := time.NewTicker(waitPoll)
	defer check.Stop()
	var fencedAt, loggedAt time.Time
	for {
		select {
		case <-check.C:
			if !w.Fenced() {
				continue
			}
			if fencedAt.IsZero() {
				fencedAt = time.Now()
			}
			if time.Since(fencedAt) >= cfg.KillGrace && time.Since(loggedAt) >= waitLogEvery {
				loggedAt = time.Now()
				cfg.Logger.Warn(event.ServiceWaitingOld, "cgroup", dir.Path, "threads", threads(dir.Path),
					"waited_seconds", time.Since(fencedAt).Seconds(), "incarnation", n)
			}
		case <-stopping:
			cfg.Logger.Warn(event.ServiceStopTimeout, "pid", cmd.Process.Pid, "timeout_seconds", cfg.StopTimeout.Seconds())
			if err := dir.Kill(); err != nil && !errors.Is(err, cgroup.ErrNoKill) {
				cfg.Logger.Error(event.ServiceKillFailed, "err", err, "detail", "killing the service")
			}
			t := time.NewTimer(cfg.KillGrace)
			defer t.Stop()
			abandon = t.C
		case <-abandon:
			// SIGKILL could not end it (a thread stuck in the kernel):
			// a stop must end all the same. Nothing runs user code any
			// more; stallmon says so and goes, silent on the heartbeat,
			// and its next run waits for the cgroup to empty.
			cfg.Logger.Error(event.ServiceAbandoned, "cgroup", dir.Path, "pid", cmd.Process.Pid, "threads", threads(dir.Path),
				"stop_timeout_seconds", cfg.StopTimeout.Seconds(), "kill_grace_seconds", cfg.KillGrace.Seconds())
			w.Abandon()
			stopAgent()
			r := <-judged
			inc.status.Abandoned = true
			inc.outcome = r.outcome
			return inc, r.err
		case sig := <-cfg.Signals:
			// Through the pidfd Go holds for the child: never a
			// recycled PID.
			if err := cmd.Process.Signal(sig); err == nil {
				cfg.Logger.Info(event.SignalForwarded, "signal", sig.String(), "pid", cmd.Process.Pid)
			}
			if (sig == syscall.SIGTERM || sig == os.Interrupt) && !inc.stopped {
				inc.stopped = true
				t := time.NewTimer(cfg.StopTimeout)
				defer t.Stop()
				stopping = t.C
			}
		case <-mainDone:
			// The service is its main process: what it left behind in
			// the cgroup goes with it, as systemd's KillMode does.
			mainDone = nil
			inc.status = statusOf(cmd.ProcessState)
			inc.ran = time.Since(started)
			cfg.Logger.Info(event.ServiceExited, "incarnation", n, "pid", cmd.Process.Pid, "status", inc.status.String(),
				"exit_code", inc.status.ExitCode())
			if err := dir.Kill(); err != nil && !errors.Is(err, cgroup.ErrNoKill) {
				cfg.Logger.Error(event.ServiceKillFailed, "err", err, "detail", "killing the rest of the service")
			}
		case r := <-judged:
			if r.err != nil {
				// Nobody judges the service any more: it must not go
				// on unwatched.
				if err := dir.Kill(); err != nil {
					cfg.Logger.Error(event.ServiceKillFailed, "err", err, "detail", "killing the unwatched service")
				}
				if mainDone != nil {
					<-mainDone
				}
				return inc, r.err
			}
			inc.outcome = r.outcome
			if mainDone != nil {
				<-mainDone
				inc.status = statusOf(cmd.ProcessState)
				inc.ran = time.Since(started)
				cfg.Logger.Info(event.ServiceExited, "incarnation", n, "pid", cmd.Process.Pid, "status", inc.status.String(),
					"exit_code", inc.status.ExitCode())
			}
			return inc, nil
		}
	}
}

// sleep waits d, and reports true if a SIGTERM or SIGINT came meanwhile.
func sleep(ctx context.Context, signals <-chan os.Signal, d time.Duration) (stop bool) {
	t := time.NewTimer(d)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			return false
		case <-ctx.Done():
			return true
		case sig := <-signals:
			if sig == syscall.SIGTERM || sig == os.Interrupt {
				return true
			}
		}
	}
}
