package keepalived

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/stallmon/stallmon/internal/event"
	"github.com/stallmon/stallmon/internal/sink"
)

// CloseTimeout bounds Close, which has no context: the last write may
// sit on a file system that stopped answering.
const CloseTimeout = 2 * time.Second

// Sink keeps keepalived's track_file in step with the verdict. One
// goroutine owns the file, so that a write stuck in the kernel (a hung
// NFS /run, say) makes Apply fail at its deadline instead of blocking the
// hub.
//
// An Alive verdict's ValidUntil (the poll's age limit, two poll
// intervals) comes sooner than the next verdict (a heartbeat interval
// later): a file that went blind at ValidUntil would flap between 0 and
// 2 at every interval, and keepalived would move the VIP each time. The
// sink keeps the 0 until the next verdict instead; the agent's publisher
// judges staleness when it reads the gate and sends Blind in time.
type Sink struct {
	path string
	log  *slog.Logger
	reqs chan request
	stop chan struct{}
	done chan struct{}

	closed   bool
	closeErr error // the last write's, set before done is closed
}

type request struct {
	value  int
	result chan error
}

// New checks that the file's directory exists and is writable, writes
// ValueStarting to the file so that keepalived keeps the VIP away until
// the first Alive verdict, and starts the sink.
func New(path string, log *slog.Logger) (*Sink, error) {
	if path == "" {
		return nil, errors.New("no file named")
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if err := checkDir(abs); err != nil {
		return nil, err
	}
	m, err := writeValue(abs, ValueStarting)
	if err != nil {
		return nil, fmt.Errorf("writing %s: %w", abs, err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log.Info(event.KeepalivedFileWritten, "path", abs, "value", ValueStarting, "state", valueName(ValueStarting))
	s := &Sink{path: abs, log: log, reqs: make(chan request), stop: make(chan struct{}), done: make(chan struct{})}
	go s.keep(m)
	return s, nil
}

// Name implements sink.Sink.
func (s *Sink) Name() string { return "keepalived" }

// Path is the file the sink writes, made absolute.
func (s *Sink) Path() string { return s.path }

// Apply makes the file say v's value, writing it only when the value
// changes or the file is no longer as the sink left it.
func (s *Sink) Apply(ctx context.Context, v sink.Verdict) error {
	r := request{value: Value(v.State), result: make(chan error, 1)}
	select {
	case s.reqs <- r:
	case <-s.done:
		return errors.New("keepalived sink closed")
	case <-ctx.Done():
		return fmt.Errorf("%s: previous write still running: %w", s.path, ctx.Err())
	}
	select {
	case err := <-r.result:
		return err
	case <-ctx.Done():
		return fmt.Errorf("writing %s: %w", s.path, ctx.Err())
	}
}

// Close stops the sink. Unless the file holds a non-zero value the sink
// wrote (a final fenced, say, which it keeps), it writes ValueLeaving:
// a 0 must not outlive the stallmon that vouched for it.
func (s *Sink) Close() error {
	if s.closed {
		return s.closeErr
	}
	s.closed = true
	close(s.stop)
	select {
	case <-s.done:
	case <-time.After(CloseTimeout):
		s.closeErr = fmt.Errorf("%s: last write still running after %v", s.path, CloseTimeout)
	}
	return s.closeErr
}

func (s *Sink) keep(m mark) {
	defer close(s.done)
	for {
		select {
		case r := <-s.reqs:
			var err error
			m, err = s.ensure(m, r.value)
			r.result <- err
		case <-s.stop:
			if m.value <= ValueAlive || !m.holds(s.path) {
				_, s.closeErr = s.ensure(m, ValueLeaving)
			}
			return
		}
	}
}

// ensure writes value unless the file already holds it as the sink left
// it. A failed write leaves the mark unknown, so the next call writes.
func (s *Sink) ensure(m mark, value int) (mark, error) {
	if m.value == value && m.holds(s.path) {
		return m, nil
	}
	if m.value == value {
		s.log.Warn(event.KeepalivedFileAltered, "path", s.path, "value", value, "state", valueName(value))
	}
	nm, err := writeValue(s.path, value)
	if err != nil {
		return unknown, fmt.Errorf("writing %s: %w", s.path, err)
	}
	s.log.Info(event.KeepalivedFileWritten, "path", s.path, "value", value, "state", valueName(value))
	return nm, nil
}
