package workload

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"
)

// DefaultTimeout is how long Start waits for "ready" and Do for a reply.
const DefaultTimeout = 10 * time.Second

// stopGrace is how long Stop lets the workload exit on EOF before killing it.
const stopGrace = 5 * time.Second

// Proc is a workload process seen from the parent that started it.
type Proc struct {
	Cmd *exec.Cmd // started already and waited for by Proc: use Wait
	PID int
	// Parent is the shell that forked the workload, for StartChild; 0
	// when Cmd is the workload itself.
	Parent int
	// Timeout bounds Do; Start sets it to DefaultTimeout.
	Timeout time.Duration

	ctx      context.Context
	stdin    *os.File
	lines    chan string // the child's stdout, closed at EOF
	mu       sync.Mutex  // one command in flight at a time
	broken   error       // replies can no longer be matched to commands
	stdinEOF sync.Once
	exited   chan struct{}
	waitErr  error
}

// Reply is the answer to one command: the fields of its ok line, and the
// lines that came before it (churn's "round" lines).
type Reply struct {
	Fields
	Progress []Line
}

// ReplyError is an "err" reply: the workload refused or failed a command
// and is still running.
type ReplyError struct {
	PID int
	Cmd string
	Msg string
}

func (e *ReplyError) Error() string {
	return fmt.Sprintf("workload %d: %q: %s", e.PID, e.Cmd, e.Msg)
}

// Start runs the binary at path with EnvVar=1 added to env (nil env means
// this process's environment) and returns once it printed "ready". The
// binary must call Main when it sees EnvVar=1; a test binary can do so from
// TestMain. Cancelling ctx kills it.
func Start(ctx context.Context, path string, args []string, env []string) (*Proc, error) {
	return start(ctx, false, path, args, env)
}

// StartChild is Start with the workload forked by a shell that waits for
// it (sh -c '... "$0" "$@" & wait'): the workload is a child, not the process
// Cmd starts, as a service's worker is its master's. PID is the workload's,
// Parent the shell's.
func StartChild(ctx context.Context, path string, args []string, env []string) (*Proc, error) {
	// A non-interactive shell gives a background job /dev/null for stdin,
	// and dash does so even over an explicit <&0: the workload reads its
	// commands from a copy of the shell's stdin.
	return start(ctx, true, "/bin/sh", append([]string{"-c", `exec 3<&0; "$0" "$@" <&3 3<&- & wait`, path}, args...), env)
}

func start(ctx context.Context, child bool, path string, args []string, env []string) (*Proc, error) {
	if env == nil {
		env = os.Environ()
	}
	// Plain pipes rather than exec's StdinPipe/StdoutPipe: Wait must not
	// close the reading end while the line reader still drains it.
	inR, inW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("creating workload stdin: %w", err)
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		inR.Close()
		inW.Close()
		return nil, fmt.Errorf("creating workload stdout: %w", err)
	}
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Env = append(env[:len(env):len(env)], EnvVar+"=1")
	cmd.Stdin = inR
	cmd.Stdout = outW
	cmd.Stderr = os.Stderr
	err = cmd.Start()
	inR.Close()
	outW.Close()
	if err != nil {
		inW.Close()
		outR.Close()
		return nil, fmt.Errorf("starting workload %s: %w", path, err)
	}
	p := &Proc{
		Cmd:     cmd,
		PID:     cmd.Process.Pid,
		Timeout: DefaultTimeout,
		ctx:     ctx,
		stdin:   inW,
		lines:   make(chan string, 16),
		exited:  make(chan struct{}),
	}
	if child {
		p.Parent = p.PID
	}
	go p.readLines(outR)
	go func() {
		p.waitErr = cmd.Wait()
		close(p.exited)
	}()
	if err := p.awaitReady(); err != nil {
		cmd.Process.Kill()
		p.Wait()
		return nil, err
	}
	return p, nil
}

func (p *Proc) readLines(r *os.File) {
	defer close(p.lines)
	defer r.Close()
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		p.lines <- sc.Text()
	}
}

func (p *Proc) awaitReady() error {
	timer := time.NewTimer(p.Timeout)
	defer timer.Stop()
	select {
	case s, ok := <-p.lines:
		if !ok {
			return fmt.Errorf("workload %d exited before it was ready", p.PID)
		}
		l, err := ParseLine(s)
		if err != nil || l.Word != "ready" {
			return fmt.Errorf("workload %d: first line %q is not \"ready pid=N\"", p.PID, s)
		}
		pid, err := l.Fields.Int("pid")
		switch {
		case err == nil && p.Parent != 0:
			p.PID = pid
		case err != nil || pid != p.PID:
			return fmt.Errorf("workload %d: says it is %q", p.PID, l.Fields["pid"])
		}
		return nil
	case <-timer.C:
		return fmt.Errorf("workload %d: not ready within %v", p.PID, p.Timeout)
	case <-p.ctx.Done():
		return fmt.Errorf("workload %d, waiting for it to get ready: %w", p.PID, p.ctx.Err())
	}
}

// Do sends one command line and waits, up to p.Timeout, for its ok reply.
// An err reply returns a *ReplyError. After a timeout or a garbled reply the
// Proc refuses further commands, since a late reply would answer the wrong
// one.
func (p *Proc) Do(cmd string) (Reply, error) {
	return p.DoTimeout(cmd, p.Timeout)
}

// DoTimeout is Do with its own bound, for long commands such as a big churn.
func (p *Proc) DoTimeout(cmd string, timeout time.Duration) (Reply, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.send(cmd); err != nil {
		return Reply{}, err
	}
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	var progress []Line
	for {
		select {
		case s, ok := <-p.lines:
			if !ok {
				p.broken = errors.New("workload exited")
				return Reply{Progress: progress}, fmt.Errorf("workload %d exited before replying to %q", p.PID, cmd)
			}
			if msg, ok := strings.CutPrefix(s, "err "); ok {
				return Reply{Progress: progress}, &ReplyError{PID: p.PID, Cmd: cmd, Msg: msg}
			}
			l, err := ParseLine(s)
			if err != nil {
				p.broken = err
				return Reply{Progress: progress}, fmt.Errorf("workload %d, replying to %q: %w", p.PID, cmd, err)
			}
			if l.Word == "ok" {
				return Reply{Fields: l.Fields, Progress: progress}, nil
			}
			progress = append(progress, l)
		case <-timer.C:
			p.broken = fmt.Errorf("no reply to %q within %v", cmd, timeout)
			return Reply{Progress: progress}, fmt.Errorf("workload %d: %w", p.PID, p.broken)
		case <-p.ctx.Done():
			p.broken = p.ctx.Err()
			return Reply{Progress: progress}, fmt.Errorf("workload %d, waiting for a reply to %q: %w", p.PID, cmd, p.broken)
		}
	}
}

// Send writes one command line without waiting for a reply: for "exit",
// which has none.
func (p *Proc) Send(cmd string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.send(cmd)
}

func (p *Proc) send(cmd string) error {
	if p.broken != nil {
		return fmt.Errorf("workload %d: not sending %q: %w", p.PID, cmd, p.broken)
	}
	if strings.TrimSpace(cmd) == "" || strings.ContainsAny(cmd, "\r\n") {
		return fmt.Errorf("workload %d: %q is not one command line", p.PID, cmd)
	}
	if _, err := io.WriteString(p.stdin, cmd+"\n"); err != nil {
		return fmt.Errorf("workload %d: sending %q: %w", p.PID, cmd, err)
	}
	return nil
}

// Stop closes the workload's stdin, which makes it exit with status 0 even
// with threads stuck, and kills it if it has not exited after a grace
// period. It returns what Wait returns, or the reason it had to kill.
func (p *Proc) Stop() error {
	p.stdinEOF.Do(func() { p.stdin.Close() })
	select {
	case <-p.exited:
		return p.Wait()
	case <-time.After(stopGrace):
	}
	p.Cmd.Process.Kill()
	p.Wait()
	return fmt.Errorf("workload %d still running %v after EOF on stdin: killed", p.PID, stopGrace)
}

// Wait waits for the workload to exit and returns exec.Cmd.Wait's error: nil
// for status 0, an *exec.ExitError otherwise. It may be called many times.
func (p *Proc) Wait() error {
	<-p.exited
	p.stdinEOF.Do(func() { p.stdin.Close() })
	// Drain lines nobody asked for so the line reader ends; the exited
	// child holds no write end any more, so EOF is near.
	p.mu.Lock()
	for range p.lines {
	}
	p.mu.Unlock()
	return p.waitErr
}
