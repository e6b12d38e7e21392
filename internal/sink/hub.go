package sink

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/stallmon/stallmon/internal/event"
)

// Options tunes a Hub; zero values take the defaults.
type Options struct {
	Logger *slog.Logger
	// ApplyTimeout bounds one Apply (default DefaultApplyTimeout).
	ApplyTimeout time.Duration
	// RetryMax caps the back-off between retries of a failed Apply
	// (default 1s); the first retry comes after 50ms.
	RetryMax time.Duration
}

// queueLen bounds the verdicts waiting for a slow sink. Repeats of a state
// collapse into one, so only a sink stuck across this many changes drops
// any, and it drops the oldest: the latest verdict always stands.
const queueLen = 8

// Stats is one sink's record, for metrics.
type Stats struct {
	Name     string
	Applied  uint64 // successful Apply calls
	Failures uint64 // failed Apply calls
	Dropped  uint64 // verdicts superseded before a slow sink took them
	// OK is true once a verdict was applied and while the latest Apply
	// succeeded.
	OK bool
	// State is the latest verdict applied, "" before the first.
	State string
}

// Hub fans verdicts out to sinks, one goroutine per sink.
type Hub struct {
	log     *slog.Logger
	opts    Options
	base    context.Context
	cancel  context.CancelFunc
	workers []*worker
	wg      sync.WaitGroup
}

type worker struct {
	sink Sink
	wake chan struct{}
	idle chan struct{} // signalled after each Apply, for Settle

	mu       sync.Mutex
	queue    []Verdict
	busy     bool // an Apply is running
	failing  bool // the latest Apply failed
	stopping bool
	st       Stats
}

// Start runs one goroutine per sink. Stop must be called to end them.
func Start(sinks []Sink, opts Options) *Hub {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.ApplyTimeout <= 0 {
		opts.ApplyTimeout = DefaultApplyTimeout
	}
	if opts.RetryMax <= 0 {
		opts.RetryMax = time.Second
	}
	h := &Hub{log: opts.Logger, opts: opts}
	h.base, h.cancel = context.WithCancel(context.Background())
	for _, s := range sinks {
		w := &worker{sink: s, wake: make(chan struct{}, 1), idle: make(chan struct{}, 1), st: Stats{Name: s.Name()}}
		h.workers = append(h.workers, w)
		h.wg.Add(1)
		go func() { defer h.wg.Done(); h.run(w) }()
	}
	return h
}

// Len is the number of sinks.
func (h *Hub) Len() int { return len(h.workers) }

// Publish hands v to every sink. It never blocks.
func (h *Hub) Publish(v Verdict) {
	for _, w := range h.workers {
		w.mu.Lock()
		if n := len(w.queue); n > 0 && w.queue[n-1].State == v.State && !w.queue[n-1].Final {
			w.queue[n-1] = v
		} else {
			w.queue = append(w.queue, v)
		}
		if len(w.queue) > queueLen {
			w.queue = w.queue[1:]
			w.st.Dropped++
		}
		w.mu.Unlock()
		select {
		case w.wake <- struct{}{}:
		default:
		}
	}
}

// DefaultApplyTimeout bounds one Apply unless Options say otherwise. Stop
// takes up to FlushTimeout plus this: the flush, then one Apply that was
// running when it ran out, cancelled.
const DefaultApplyTimeout = 2 * time.Second

// FlushTimeout is how long an ending run or process lets its sinks send
// the final verdict (FENCED, LEAVING) before going on without them.
const FlushTimeout = 3 * time.Second

// Stop lets every sink apply what was published, for at most timeout,
// then cancels what is still running. A sink whose
// Apply ignores its context is abandoned, not waited for.
func (h *Hub) Stop(timeout time.Duration) {
	for _, w := range h.workers {
		w.mu.Lock()
		w.stopping = true
		w.mu.Unlock()
		select {
		case w.wake <- struct{}{}:
		default:
		}
	}
	done := make(chan struct{})
	go func() { h.wg.Wait(); close(done) }()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-done:
		h.cancel()
		return
	case <-t.C:
	}
	h.cancel()
	t.Reset(h.opts.ApplyTimeout)
	select {
	case <-done:
	case <-t.C:
		for _, w := range h.workers {
			w.mu.Lock()
			pending, busy := len(w.queue), w.busy
			if pending > 0 || busy {
				w.st.OK = false
			}
			w.mu.Unlock()
			if pending > 0 || busy {
				h.log.Error(event.SinkAbandoned, "sink", w.st.Name, "pending", pending, "applying", busy)
			}
		}
	}
}

// Settle waits, for at most timeout, until every sink has applied what
// was published to it, and reports whether they all did.
func (h *Hub) Settle(timeout time.Duration) bool {
	t := time.NewTimer(timeout)
	defer t.Stop()
	for _, w := range h.workers {
		for {
			w.mu.Lock()
			done := len(w.queue) == 0 && !w.busy
			w.mu.Unlock()
			if done {
				break
			}
			select {
			case <-w.idle:
			case <-t.C:
				return false
			}
		}
	}
	return true
}

// Stats returns every sink's record, in the order the sinks were given.
func (h *Hub) Stats() []Stats {
	out := make([]Stats, 0, len(h.workers))
	for _, w := range h.workers {
		w.mu.Lock()
		out = append(out, w.st)
		w.mu.Unlock()
	}
	return out
}

func (h *Hub) run(w *worker) {
	backoff := time.Duration(0)
	for {
		v, ok := w.next(h.base)
		if !ok {
			return
		}
		if !v.Fresh(time.Now()) {
			// An Alive verdict that waited past its poll's freshness
			// must not be reported; the publisher sends Blind next.
			continue
		}
		ctx, cancel := context.WithTimeout(h.base, h.opts.ApplyTimeout)
		err := w.sink.Apply(ctx, v)
		cancel()
		w.mu.Lock()
		w.busy = false
		w.mu.Unlock()
		if err == nil {
			w.applied(h.log, v)
			backoff = 0
			continue
		}
		w.failed(h.log, v, err)
		if h.base.Err() != nil {
			return
		}
		backoff = min(max(2*backoff, 50*time.Millisecond), h.opts.RetryMax)
		w.retry(v)
		t := time.NewTimer(backoff)
		select {
		case <-t.C:
		case <-w.wake:
			// A newer verdict: try it at once.
		case <-h.base.Done():
		}
		t.Stop()
	}
}

// next waits for the oldest queued verdict; false once the hub stops and
// the queue is empty, or at once when the hub is cancelled.
func (w *worker) next(base context.Context) (Verdict, bool) {
	for {
		w.mu.Lock()
		w.busy = false
		if base.Err() != nil {
			w.mu.Unlock()
			return Verdict{}, false
		}
		if len(w.queue) > 0 {
			v := w.queue[0]
			w.queue = w.queue[1:]
			w.busy = true
			w.mu.Unlock()
			return v, true
		}
		stopping := w.stopping
		w.mu.Unlock()
		select {
		case w.idle <- struct{}{}:
		default:
		}
		if stopping {
			return Verdict{}, false
		}
		select {
		case <-w.wake:
		case <-base.Done():
		}
	}
}

// retry puts a failed verdict back unless a newer one already supersedes it.
func (w *worker) retry(v Verdict) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.queue) == 0 {
		w.queue = append(w.queue, v)
	}
}

// applied and failed log outside the lock: Publish, which takes it,
// must never wait on a log writer.
func (w *worker) applied(log *slog.Logger, v Verdict) {
	w.mu.Lock()
	w.st.Applied++
	w.st.State = v.State.String()
	recovered := w.failing
	w.failing, w.st.OK = false, true
	w.mu.Unlock()
	if recovered {
		log.Info(event.SinkRecovered, "sink", w.st.Name, "state", v.State.String())
	}
}

// failed logs the first failure of a run, not each retry.
func (w *worker) failed(log *slog.Logger, v Verdict, err error) {
	w.mu.Lock()
	w.st.Failures++
	first := !w.failing
	w.failing, w.st.OK = true, false
	w.mu.Unlock()
	if first {
		log.Warn(event.SinkFailed, "sink", w.st.Name, "state", v.State.String(), "err", err)
	}
}
