package etcd

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"

	"github.com/stallmon/stallmon/internal/event"
	"github.com/stallmon/stallmon/internal/procgroup"
)

// Hook names, also the value of STALLMON_EVENT in a hook's environment.
const (
	hookElected = "elected"
	hookDemoted = "demoted"
)

// hookOutputMax bounds the output of a hook kept for the log: its tail.
const hookOutputMax = 2048

type hookRun struct {
	event string
	cmd   string
	env   []string
}

// hookRunner runs the election hooks one at a time, in the order of the
// transitions that queued them, in a goroutine of its own: a hook that
// hangs delays the hooks after it, never Apply, and only until its
// timeout.
type hookRunner struct {
	log     *slog.Logger
	timeout time.Duration
	// ctx is cancelled when the runner is abandoned: it kills the hook
	// that runs and skips those queued.
	ctx    context.Context
	cancel context.CancelFunc
	wake   chan struct{}
	done   chan struct{}

	mu     sync.Mutex
	queue  []hookRun
	closed bool
}

func newHookRunner(log *slog.Logger, timeout time.Duration) *hookRunner {
	h := &hookRunner{log: log, timeout: timeout, wake: make(chan struct{}, 1), done: make(chan struct{})}
	h.ctx, h.cancel = context.WithCancel(context.Background())
	go h.loop()
	return h
}

// enqueue never blocks; an empty cmd is no hook.
func (h *hookRunner) enqueue(r hookRun) {
	if r.cmd == "" {
		return
	}
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		h.log.Warn(event.EtcdHookSkipped, "hook", r.event, "reason", "sink closed")
		return
	}
	h.queue = append(h.queue, r)
	h.mu.Unlock()
	select {
	case h.wake <- struct{}{}:
	default:
	}
}

// close lets the queued hooks run for at most wait, then kills what
// still runs and skips the rest.
func (h *hookRunner) close(wait time.Duration) {
	h.mu.Lock()
	h.closed = true
	h.mu.Unlock()
	select {
	case h.wake <- struct{}{}:
	default:
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-h.done:
	case <-t.C:
		h.cancel()
		<-h.done // bounded: a killed hook's pipes are closed by WaitDelay
	}
	h.cancel()
}

func (h *hookRunner) loop() {
	defer close(h.done)
	for {
		h.mu.Lock()
		if len(h.queue) == 0 {
			closed := h.closed
			h.mu.Unlock()
			if closed {
				return
			}
			<-h.wake
			continue
		}
		r := h.queue[0]
		h.queue = h.queue[1:]
		h.mu.Unlock()
		if h.ctx.Err() != nil {
			h.log.Warn(event.EtcdHookSkipped, "hook", r.event, "reason", "sink closed")
			continue
		}
		h.run(r)
	}
}

func (h *hookRunner) run(r hookRun) {
	ctx, cancel := context.WithTimeout(h.ctx, h.timeout)
	defer cancel()
	cmd := exec.Command("/bin/sh", "-c", r.cmd)
	cmd.Env = append(os.Environ(), r.env...)
	// A group of its own, killed whole at the timeout: what the hook
	// started in the background must not outlive the bound either.
	cmd.WaitDelay = time.Second
	out := &tailBuffer{max: hookOutputMax}
	cmd.Stdout, cmd.Stderr = out, out
	start := time.Now()
	_, err := procgroup.Run(ctx, cmd)
	attrs := []any{"hook", r.event, "seconds", time.Since(start).Seconds(), "exit_code", cmd.ProcessState.ExitCode()}
	if o := strings.TrimSpace(out.String()); o != "" {
		attrs = append(attrs, "output", o)
	}
	switch {
	case ctx.Err() != nil && errors.Is(context.Cause(ctx), context.DeadlineExceeded):
		h.log.Error(event.EtcdHook, append(attrs, "err", "timed out after "+h.timeout.String())...)
	case ctx.Err() != nil:
		h.log.Error(event.EtcdHook, append(attrs, "err", "killed: sink closed")...)
	case err != nil:
		h.log.Error(event.EtcdHook, append(attrs, "err", err.Error())...)
	default:
		h.log.Info(event.EtcdHook, attrs...)
	}
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if over := len(t.b) - t.max; over > 0 {
		t.b = append(t.b[:0], t.b[over:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}
