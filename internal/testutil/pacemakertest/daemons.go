package pacemakertest

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"syscall"
	"time"
)

// spawn starts a daemon in the cluster's cgroup, its output in the file
// log. Should the test binary die, Pdeathsig takes the daemon with it;
// the next start sweeps what they forked.
//
// Pdeathsig fires when the thread that forked the daemon ends, not the
// process, and Go ends a thread when a goroutine locked to it returns (a
// test that enters a namespace does): so the daemons are forked from a
// thread of the cluster's own, which ends only once Stop stopped them.
func (c *Cluster) spawn(log string, env []string, name string, args ...string) (*daemon, error) {
	if c.forker == nil {
		c.forker = make(chan func())
		go func() {
			runtime.LockOSThread()
			for f := range c.forker {
				f()
			}
		}()
	}
	var d *daemon
	var err error
	done := make(chan struct{})
	c.forker <- func() { d, err = c.fork(log, env, name, args...); close(done) }
	<-done
	return d, err
}

func (c *Cluster) fork(log string, env []string, name string, args ...string) (*daemon, error) {
	out, err := os.Create(c.path(log))
	if err != nil {
		return nil, err
	}
	defer out.Close()
	cg, err := os.Open(c.cg.Path)
	if err != nil {
		return nil, err
	}
	defer cg.Close()
	cmd := exec.Command(name, args...)
	cmd.Dir = c.dir
	cmd.Stdout, cmd.Stderr = out, out
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: int(cg.Fd()), Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	d := &daemon{cmd: cmd, done: make(chan struct{})}
	go func() { cmd.Wait(); close(d.done) }()
	return d, nil
}

// waitFor polls ready until it succeeds, d exits, or ctx ends.
func (c *Cluster) waitFor(ctx context.Context, what string, d *daemon, ready func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	for {
		err := ready(ctx)
		if err == nil {
			return nil
		}
		select {
		case <-d.done:
			return fmt.Errorf("waiting for %s: %s exited (%v)\n%s", what, d.cmd.Args[0], d.cmd.ProcessState, c.Logs())
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w (last: %v)\n%s", what, ctx.Err(), err, c.Logs())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Logs returns the tails of the daemons' logs, for a failing test.
func (c *Cluster) Logs() string {
	var b strings.Builder
	for _, name := range []string{"corosync.log", "pacemakerd.log", "pacemaker.log"} {
		data, err := os.ReadFile(c.path(name))
		if err != nil {
			continue
		}
		lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
		lines = lines[max(0, len(lines)-40):]
		fmt.Fprintf(&b, "--- %s (last %d lines)\n%s\n", name, len(lines), strings.Join(lines, "\n"))
	}
	return b.String()
}

// Run runs one of the cluster's command-line tools, bounded by ctx, and
// returns its standard output; a failure carries its standard error.
func Run(ctx context.Context, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = time.Second
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}
