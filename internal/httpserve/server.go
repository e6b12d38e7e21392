// Package httpserve is stallmon's HTTP listener: Prometheus metrics at
// /metrics and, for an agent, the health probes /livez and /readyz.
package httpserve

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/stallmon/stallmon/internal/event"
	"github.com/stallmon/stallmon/internal/metrics"
)

// Start serves reg at /metrics on addr, with extra handlers beside it,
// and returns at once. A server that cannot start is logged (event.MetricsFailed),
// not fatal: the agent's job is the heartbeat and the kill, and
// Prometheus reports the missing target. regErr is an error building reg,
// logged the same way.
func Start(log *slog.Logger, addr string, reg *prometheus.Registry, regErr error, extra map[string]http.Handler) *Server {
	s := &Server{scraped: make(chan struct{}, 1)}
	if regErr != nil {
		log.Error(event.MetricsFailed, "err", regErr)
		return s
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		log.Error(event.MetricsFailed, "addr", addr, "err", fmt.Errorf("listening for scrapes: %w", err))
		return s
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", s.count(metrics.Handler(reg)))
	for path, h := range extra {
		mux.Handle(path, h)
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		fmt.Fprintln(w, "stallmon: metrics at /metrics; /livez and /readyz for an agent")
	})
	s.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	s.done = make(chan struct{})
	go func() {
		defer close(s.done)
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error(event.MetricsFailed, "addr", ln.Addr().String(), "err", err)
		}
	}()
	// The actual address: with port 0 (tests) the kernel chose it.
	log.Info(event.MetricsListening, "addr", ln.Addr().String())
	return s
}

// Server is the HTTP side; it counts scrapes so that Stop can wait for one
// that saw the final state.
type Server struct {
	srv  *http.Server // nil when it could not start
	done chan struct{}

	started atomic.Uint64 // scrapes begun
	mu      sync.Mutex
	served  uint64 // highest begun-number of a finished scrape
	scraped chan struct{}
}

func (s *Server) count(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := s.started.Add(1)
		next.ServeHTTP(w, r)
		s.mu.Lock()
		s.served = max(s.served, n)
		s.mu.Unlock()
		select {
		case s.scraped <- struct{}{}:
		default:
		}
	})
}

// Stop waits, up to linger and while ctx lasts, for a scrape begun after
// this call, then shuts the server down. Without it, the counters of a
// kill would die with the process before Prometheus saw them.
func (s *Server) Stop(ctx context.Context, linger time.Duration) {
	if s.srv == nil {
		return
	}
	if linger > 0 && ctx.Err() == nil {
		mark := s.started.Load()
		timeout := time.NewTimer(linger)
		defer timeout.Stop()
	wait:
		for {
			s.mu.Lock()
			seen := s.served > mark
			s.mu.Unlock()
			if seen {
				break
			}
			select {
			case <-s.scraped:
			case <-timeout.C:
				break wait
			case <-ctx.Done():
				break wait
			}
		}
	}
	sctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := s.srv.Shutdown(sctx); err != nil {
		s.srv.Close()
	}
	<-s.done
}
