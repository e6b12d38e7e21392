package pipeline

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/stallmon/stallmon/internal/agent"
	"github.com/stallmon/stallmon/internal/egress"
	"github.com/stallmon/stallmon/internal/event"
	"github.com/stallmon/stallmon/internal/httpserve"
	"github.com/stallmon/stallmon/internal/metrics"
	"github.com/stallmon/stallmon/internal/nodefence"
	"github.com/stallmon/stallmon/internal/sink"
	"github.com/stallmon/stallmon/internal/supervise"
	"github.com/stallmon/stallmon/internal/tracker"
)

// Service is what Supervise runs, and its restart policy.
type Service struct {
	Command []string
	// Restart is never, on-failure or always (supervise.ParsePolicy).
	Restart      string
	MaxRestarts  int
	RestartDelay time.Duration
	StopTimeout  time.Duration
	// CgroupParent is where each start's cgroup is made; "" is
	// stallmon's own.
	CgroupParent   string
	Stdin          io.Reader
	Stdout, Stderr io.Writer
}

// Supervise runs s under watch from its first instruction, each start a
// new incarnation, until it ends for good or ctx is done (stallmon run),
// and returns how its last start ended.
func Supervise(ctx context.Context, cfg Config, s Service) (supervise.Status, error) {
	c, err := newChain(cfg)
	if err != nil {
		return supervise.Status{}, err
	}
	defer c.close()
	policy, err := supervise.ParsePolicy(s.Restart)
	if err != nil {
		return supervise.Status{}, configErr(err)
	}
	if s.MaxRestarts < 0 || s.RestartDelay <= 0 || s.StopTimeout <= 0 {
		return supervise.Status{}, configErr(fmt.Errorf("--max-restarts must be 0 or more, --restart-delay and --stop-timeout positive, got %d, %v and %v",
			s.MaxRestarts, s.RestartDelay, s.StopTimeout))
	}
	if len(s.Command) == 0 {
		return supervise.Status{}, configErr(errors.New("no command to run"))
	}
	kill := !cfg.Watch.NoKill
	if err := cfg.NodeFence.Validate(kill); err != nil {
		return supervise.Status{}, configErr(err)
	}
	if err := cfg.Sinks.validate(); err != nil {
		return supervise.Status{}, err
	}
	// The service's processes would inherit a lowered OOM score.
	c.protect(false)
	service := filepath.Base(s.Command[0])
	if err := c.startHeartbeat(service); err != nil {
		return supervise.Status{}, err
	}
	// stallmon is the service's main process here: sinks that name the
	// service by pid (systemd) name stallmon's own.
	if err := c.startSinks(service, sink.Target{}); err != nil {
		return supervise.Status{}, err
	}
	signals := make(chan os.Signal, 4)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	defer signal.Stop(signals)

	watch := func(path string) (supervise.Watcher, error) {
		tr, err := tracker.Attach(tracker.EmptyCgroup(path), c.log, c.trackerOptions())
		if err != nil {
			return nil, attachErr(err)
		}
		// Armed for each start, as under attach, once its tracker is
		// attached: nothing feeds a watchdog between two starts (the
		// restart delay may outlast its timeout), and Close disarms it
		// unless fencing began. --on-unkillable acts when a service
		// stallmon killed does not die.
		nf, err := cfg.NodeFence.Arm(kill, c.log)
		if err != nil {
			tr.Close()
			return nil, configErr(err)
		}
		gate, err := c.openEgress(service, egress.Scope{Cgroup: path})
		if err != nil {
			if nf != nil {
				nf.Close()
			}
			tr.Close()
			return nil, configErr(err)
		}
		a, err := c.newAgent(tr, nf, gate)
		if err != nil {
			if nf != nil {
				nf.Close()
			}
			if gate != nil {
				// No agent ran, nothing was judged: released as asked.
				gate.AllowRelease()
				gate.Close()
			}
			tr.Close()
			return nil, err
		}
		c.logAttached("cgroup", path, "bpf_object", tr.Object())
		return &serviceWatch{ctx: ctx, chain: c, tracker: tr, agent: a, gate: gate, fencer: nf}, nil
	}
	waiting := &waitServer{ctx: ctx, chain: c}
	defer waiting.set("")
	return supervise.Run(ctx, supervise.Config{
		Command: s.Command, CgroupParent: s.CgroupParent, Restart: policy, MaxRestarts: s.MaxRestarts,
		RestartDelay: s.RestartDelay, StableAfter: 32 * s.RestartDelay, Signals: signals, StopTimeout: s.StopTimeout,
		KillGrace: cfg.Watch.KillGrace, Waiting: waiting.set,
		Stdin: s.Stdin, Stdout: s.Stdout, Stderr: s.Stderr, Logger: c.log,
	}, watch)
}

// waitServer serves /readyz (503, with the reason) and
// stallmon_service_waiting while the service's start waits for a
// cgroup an earlier run left to empty: no agent serves them then.
type waitServer struct {
	ctx   context.Context
	chain *chain
	mu    sync.Mutex
	why   string
	stop  func()
}

func (w *waitServer) set(reason string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.why = reason
	addr := w.chain.cfg.Metrics.Addr
	switch {
	case reason != "" && w.stop == nil && addr != "":
		reg, err := metrics.NewWaitingRegistry(w.chain.cfg.Version, func() bool {
			w.mu.Lock()
			defer w.mu.Unlock()
			return w.why != ""
		})
		srv := httpserve.Start(w.chain.log, addr, reg, err, httpserve.Probes(func() (bool, bool, string) {
			w.mu.Lock()
			defer w.mu.Unlock()
			return true, w.why == "", "waiting: " + w.why
		}))
		w.stop = func() { srv.Stop(w.ctx, 0) }
	case reason == "" && w.stop != nil:
		w.stop()
		w.stop = nil
	}
}

// serviceWatch is one start's agent, with its metrics.
type serviceWatch struct {
	ctx     context.Context
	chain   *chain
	tracker *tracker.Tracker
	agent   *agent.Agent
	gate    *egress.Gate     // nil without --gate-egress
	fencer  nodefence.Fencer // nil without --on-unkillable
}

func (s *serviceWatch) Started() { s.tracker.Started() }

func (s *serviceWatch) Run(ctx context.Context) (agent.Outcome, error) {
	defer s.chain.serveMetrics(s.ctx, s.tracker, s.agent, s.gate)()
	return s.agent.Run(ctx)
}

func (s *serviceWatch) Abandon() { s.agent.Abandon() }

func (s *serviceWatch) Fenced() bool { return s.agent.Fenced() }

func (s *serviceWatch) Close() error {
	if s.fencer != nil {
		s.fencer.Close()
	}
	if s.gate != nil {
		if s.agent.EgressReleasable() {
			s.gate.AllowRelease()
		}
		if err := s.gate.Close(); err != nil {
			s.chain.log.Warn(event.EgressFailed, "err", err)
		}
	}
	return s.tracker.Close()
}
