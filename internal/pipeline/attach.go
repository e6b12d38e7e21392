package pipeline

import (
	"context"
	"fmt"
	"os"

	"github.com/stallmon/stallmon/internal/agent"
	"github.com/stallmon/stallmon/internal/cgroup"
	"github.com/stallmon/stallmon/internal/egress"
	"github.com/stallmon/stallmon/internal/event"
	"github.com/stallmon/stallmon/internal/identity"
	"github.com/stallmon/stallmon/internal/nodefence"
	"github.com/stallmon/stallmon/internal/sink"
	"github.com/stallmon/stallmon/internal/tracker"
)

// Target is what Attach watches: a process (PID), with its descendants
// (Tree), or a cgroup v2 directory and its descendants (Cgroup).
type Target struct {
	PID    int
	Tree   bool
	Cgroup string
}

func (t Target) scope() tracker.Scope {
	switch {
	case t.Cgroup != "":
		return tracker.Cgroup(t.Cgroup)
	case t.Tree:
		return tracker.Tree(t.PID)
	}
	return tracker.Process(t.PID)
}

// service names the target for the default node id.
func (t Target) service() string {
	if t.Cgroup != "" {
		return identity.ServiceOfCgroup(t.Cgroup)
	}
	return identity.ServiceOfPID(t.PID)
}

// Attached is a target under watch, its agent ready to judge it.
type Attached struct {
	chain   *chain
	target  Target
	tracker *tracker.Tracker
	fencer  nodefence.Fencer
	gate    *egress.Gate // nil without --gate-egress
	agent   *agent.Agent
}

// Attach builds the chain for an existing target (stallmon attach). On an
// error nothing stays open.
func Attach(cfg Config, t Target) (_ *Attached, err error) {
	c, err := newChain(cfg)
	if err != nil {
		return nil, err
	}
	w := &Attached{chain: c, target: t}
	defer func() {
		if err != nil {
			w.Close()
		}
	}()
	// Everything the user can get wrong is refused before stallmon locks
	// its memory, takes the node id or opens a socket.
	if t.PID == os.Getpid() {
		return nil, configErr(fmt.Errorf("pid %d is stallmon itself", t.PID))
	}
	kill := !cfg.Watch.NoKill
	if err := cfg.NodeFence.Validate(kill); err != nil {
		return nil, configErr(err)
	}
	if err := cfg.Sinks.validate(); err != nil {
		return nil, err
	}
	c.protect(true)
	service := t.service()
	if err := c.startHeartbeat(service); err != nil {
		return nil, err
	}
	st := sink.Target{PID: t.PID}
	if t.Cgroup != "" {
		// A cgroup that does not resolve is reported by the attach.
		if d, err := cgroup.Open(t.Cgroup); err == nil {
			st.Cgroup = d.Path
		}
	}
	if err := c.startSinks(service, st); err != nil {
		return nil, err
	}
	if w.tracker, err = tracker.Attach(t.scope(), c.log, c.trackerOptions()); err != nil {
		return nil, attachErr(err)
	}
	if w.fencer, err = cfg.NodeFence.Arm(kill, c.log); err != nil {
		return nil, configErr(err)
	}
	scope := egress.Scope{PID: t.PID, Tree: t.Tree}
	if t.Cgroup != "" {
		scope = egress.Scope{Cgroup: t.Cgroup}
	}
	if w.gate, err = c.openEgress(service, scope); err != nil {
		return nil, err
	}
	if w.agent, err = c.newAgent(w.tracker, w.fencer, w.gate); err != nil {
		return nil, err
	}
	return w, nil
}

// Run judges the target until it is gone or ctx is done, serving its
// metrics meanwhile.
func (w *Attached) Run(ctx context.Context) (agent.Outcome, error) {
	defer w.chain.serveMetrics(ctx, w.tracker, w.agent, w.gate)()
	w.chain.logAttached("pid", w.target.PID, "tree", w.target.Tree, "cgroup", w.target.Cgroup, "bpf_object", w.tracker.Object())
	return w.agent.Run(ctx)
}

// Close detaches, disarms the node fencer and closes the chain: the
// integrations hear the last verdict, the heartbeat its LEAVING or FENCED.
func (w *Attached) Close() {
	if w.fencer != nil {
		w.fencer.Close()
	}
	if w.gate != nil {
		// An agent that never ran judged nothing: released as asked.
		if w.agent == nil || w.agent.EgressReleasable() {
			w.gate.AllowRelease()
		}
		if err := w.gate.Close(); err != nil {
			w.chain.log.Warn(event.EgressFailed, "err", err)
		}
	}
	if w.tracker != nil {
		w.tracker.Close()
	}
	w.chain.close()
}
