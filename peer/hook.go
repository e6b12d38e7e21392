package peer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/stallmon/stallmon/internal/event"
	"github.com/stallmon/stallmon/internal/procgroup"
)

// DefaultHookTimeout bounds a failover command when none is configured.
const DefaultHookTimeout = 30 * time.Second

// maxHookOutput caps what is kept of a hook's output for the log, so a
// chatty or runaway script cannot grow the listener's memory.
const maxHookOutput = 64 << 10

// hookRunner starts one failover command per failover and lets the
// listener wait for the ones still running before it returns.
type hookRunner struct {
	command string
	timeout time.Duration
	log     *slog.Logger
	wg      sync.WaitGroup
}

func (h *hookRunner) start(ctx context.Context, ev Event) {
	h.wg.Go(func() {
		// A takeover half-done is worse than one that finishes, so shutting
		// the listener down does not cancel a running hook; the timeout
		// still bounds it.
		hctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), hookTimeout(h.timeout, ev, time.Now()))
		defer cancel()
		begin := time.Now()
		out, err := runHook(hctx, h.command, hookEnv(ev))
		attrs := []any{
			"node", ev.Node, "reason", ev.Reason, "incarnation", ev.Incarnation,
			"duration_seconds", time.Since(begin).Seconds(), "output", strings.TrimSpace(string(out)),
		}
		if err != nil {
			h.log.Error(event.FailoverHookFailed, append(attrs, "err", err)...)
			return
		}
		h.log.Info(event.FailoverHookDone, attrs...)
	})
}

func (h *hookRunner) wait() { h.wg.Wait() }

// hookTimeout is how long a hook for ev may run: timeout, counted from the
// node's takeover deadline when that is later than now. A hook that waits
// for the deadline before taking over (so the old node is surely dead)
// is never killed before it could act.
func hookTimeout(timeout time.Duration, ev Event, now time.Time) time.Duration {
	if ev.TakeoverDeadline.After(now) {
		return ev.TakeoverDeadline.Sub(now) + timeout
	}
	return timeout
}

// hookEnv is the hook's interface; docs/wire.md lists these variables.
func hookEnv(ev Event) []string {
	var deadline int64
	if !ev.TakeoverDeadline.IsZero() {
		deadline = ev.TakeoverDeadline.UnixNano()
	}
	auth := "0"
	if ev.Authenticated {
		auth = "1"
	}
	return []string{
		"STALLMON_NODE=" + ev.Node,
		"STALLMON_REASON=" + ev.Reason,
		"STALLMON_STATE=" + ev.State.String(),
		"STALLMON_PREVIOUS=" + ev.Previous.String(),
		"STALLMON_INCARNATION=" + strconv.FormatUint(ev.Incarnation, 10),
		"STALLMON_SEQ=" + strconv.FormatUint(ev.Seq, 10),
		"STALLMON_TAKEOVER_DEADLINE=" + strconv.FormatInt(deadline, 10),
		"STALLMON_AUTHENTICATED=" + auth,
	}
}

// runHook runs command with /bin/sh in its own process group, so that on
// timeout the whole group is killed, not just the shell, and so that a
// terminal's Ctrl-C aimed at the listener does not cut a takeover short.
func runHook(ctx context.Context, command string, env []string) ([]byte, error) {
	cmd := exec.Command("/bin/sh", "-c", command)
	cmd.Env = append(os.Environ(), env...)
	// A background child holding the output pipe must not hold us forever.
	cmd.WaitDelay = time.Second
	out := &cappedBuffer{max: maxHookOutput}
	cmd.Stdout, cmd.Stderr = out, out
	_, err := procgroup.Run(ctx, cmd)
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return out.Bytes(), fmt.Errorf("running failover hook: timed out: %w", err)
	}
	if err != nil {
		return out.Bytes(), fmt.Errorf("running failover hook: %w", err)
	}
	return out.Bytes(), nil
}

// cappedBuffer keeps the first max bytes and silently drops the rest; the
// writer must not fail or the child would get EPIPE and behave differently.
type cappedBuffer struct {
	mu        sync.Mutex
	max       int
	b         []byte
	truncated bool
}

func (c *cappedBuffer) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	room := c.max - len(c.b)
	if len(p) > room {
		c.b = append(c.b, p[:max(room, 0)]...)
		c.truncated = true
		return len(p), nil
	}
	c.b = append(c.b, p...)
	return len(p), nil
}

func (c *cappedBuffer) Bytes() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.truncated {
		return append(append([]byte(nil), c.b...), "\n[output truncated]"...)
	}
	return append([]byte(nil), c.b...)
}
