package workload

import (
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// slowServer accepts one connection every interval, however many wait:
// a service that serves one request at a time, slower than its clients
// arrive. Its queue is never empty under load, and yet it takes work.
type slowServer struct {
	wk       *worker
	ln       int
	interval time.Duration
	accepts  atomic.Int64
}

func (w *workload) slowServerStart(args []string) ([]any, error) {
	if w.slow != nil {
		return nil, errors.New("a slow server already runs")
	}
	ms, err := strconv.Atoi(args[0])
	if err != nil || ms < 1 {
		return nil, fmt.Errorf("interval %q is no positive number of milliseconds", args[0])
	}
	ln, port, err := listenLoopback(0)
	if err != nil {
		return nil, err
	}
	s := &slowServer{ln: ln, interval: time.Duration(ms) * time.Millisecond}
	if s.wk, err = startWorker(threadOpts{blockSignals: true}, s.serve); err != nil {
		unix.Close(ln)
		return nil, err
	}
	w.slow = s
	return []any{"tid", s.wk.tid, "port", port, "fd", ln}, nil
}

func (s *slowServer) serve() (int, error) {
	for {
		// The request's work: the time one connection takes to serve.
		time.Sleep(s.interval)
		c, _, err := unix.Accept4(s.ln, unix.SOCK_CLOEXEC)
		if errors.Is(err, unix.EINTR) || errors.Is(err, unix.ECONNABORTED) {
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("accept4: %w", err)
		}
		s.accepts.Add(1)
		unix.Close(c)
	}
}
