// Package asynclog keeps the event log from ever stopping the agent: a
// stdout that nobody reads (a hung journald, a full pipe, a terminal on
// ^S) must not stop the poll loop that judges the target, nor the
// heartbeat. Lines go into a bounded queue that a goroutine of its own
// writes out; when the queue is full, lines are dropped and counted.
package asynclog

import (
	"io"
	"sync"
	"time"
)

// DefaultMax is the queue's size in bytes: thousands of events.
const DefaultMax = 4 << 20

// Writer is an io.Writer whose Write never blocks on the underlying writer.
type Writer struct {
	out  io.Writer
	max  int
	wake chan struct{}
	done chan struct{}

	mu      sync.Mutex
	queue   [][]byte
	size    int
	dropped uint64 // since the last notice
	total   uint64
	closing bool
	onDrop  func(lines uint64)
}

// New starts a Writer over out that queues at most max bytes.
func New(out io.Writer, max int) *Writer {
	w := &Writer{out: out, max: max, wake: make(chan struct{}, 1), done: make(chan struct{})}
	go w.run()
	return w
}

// OnDrop sets what is called, from the writer's goroutine, once the queue
// has drained after lines were dropped: typically a log call saying how
// many, which then goes out in the log's own format.
func (w *Writer) OnDrop(f func(lines uint64)) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.onDrop = f
}

// Write queues a copy of p, or drops it when the queue is full. It always
// reports success: the caller (a log handler) has nothing better to do.
func (w *Writer) Write(p []byte) (int, error) {
	w.mu.Lock()
	if w.size+len(p) > w.max || w.closing {
		w.dropped++
		w.total++
		w.mu.Unlock()
		return len(p), nil
	}
	w.queue = append(w.queue, append([]byte(nil), p...))
	w.size += len(p)
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
	return len(p), nil
}

// Dropped is how many lines were dropped in all.
func (w *Writer) Dropped() uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.total
}

// Close writes out what is queued, for at most timeout, and stops: the
// last events of a run (the kill, the target's exit) should reach the
// log, but a log that is not read must not keep stallmon from exiting.
// It reports whether everything was written.
func (w *Writer) Close(timeout time.Duration) bool {
	w.mu.Lock()
	w.closing = true
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-w.done:
		return true
	case <-t.C:
		return false
	}
}

func (w *Writer) run() {
	defer close(w.done)
	for {
		w.mu.Lock()
		batch := w.queue
		w.queue = nil
		closing := w.closing
		var notify func(uint64)
		var n uint64
		if len(batch) == 0 && w.dropped > 0 && w.onDrop != nil && !closing {
			notify, n = w.onDrop, w.dropped
			w.dropped = 0
		}
		w.mu.Unlock()

		for _, line := range batch {
			w.out.Write(line) // an error is a log that cannot be written: nowhere to say so
			w.mu.Lock()
			w.size -= len(line)
			w.mu.Unlock()
		}
		if notify != nil {
			notify(n)
			continue
		}
		if len(batch) > 0 {
			continue
		}
		if closing {
			return
		}
		<-w.wake
	}
}
