package pipeline

import (
	"fmt"
	"log/slog"

	"github.com/stallmon/stallmon/internal/event"
	"github.com/stallmon/stallmon/internal/identity"
	"github.com/stallmon/stallmon/internal/sink"
)

// sinkOptions is one integration's options.
type sinkOptions interface {
	// Validate refuses bad options, with no side effect.
	Validate() error
	// Sink returns the integration's sink, or nil when it is off.
	Sink(t sink.Target, log *slog.Logger) (sink.Sink, error)
}

// startSinks builds the integrations c asks for, for target t (its
// NodeID is filled in here), and starts their hub: one for the life of the
// process, whatever the runs of a supervised service, so that a verdict
// one run could not get through is still retried after it, and no sink is
// ever applied from two hubs at once. The returned function lets the
// sinks apply the last verdict, for at most sink.FlushTimeout, and closes
// them.
// The hub is nil without integrations.
func startSinks(c Sinks, node Node, service string, t sink.Target, log *slog.Logger) (*sink.Hub, func(), error) {
	noop := func() {}
	id, err := identity.NodeID(node.ID, service)
	if err != nil {
		return nil, noop, configErr(err)
	}
	t.NodeID = id
	var sinks []sink.Sink
	closeAll := func() {
		for _, s := range sinks {
			if err := s.Close(); err != nil {
				log.Warn(event.SinkCloseFailed, "sink", s.Name(), "err", err)
			}
		}
	}
	names := map[string]bool{}
	for _, o := range c.all() {
		s, err := o.Sink(t, log)
		if err != nil {
			closeAll()
			return nil, noop, configErr(err)
		}
		if s == nil {
			continue
		}
		sinks = append(sinks, s)
		if names[s.Name()] {
			closeAll()
			return nil, noop, configErr(fmt.Errorf("two sinks named %q", s.Name()))
		}
		names[s.Name()] = true
	}
	if len(sinks) == 0 {
		return nil, noop, nil
	}
	hub := sink.Start(sinks, sink.Options{Logger: log})
	return hub, func() {
		hub.Stop(sink.FlushTimeout)
		closeAll()
	}, nil
}

// all is every integration's options, in the order their sinks are built.
func (c Sinks) all() []sinkOptions {
	return []sinkOptions{c.Keepalived, c.Etcd, c.Pacemaker, c.Systemd}
}

// validate checks every integration's options before anything is opened.
func (c Sinks) validate() error {
	for _, o := range c.all() {
		if err := o.Validate(); err != nil {
			return configErr(err)
		}
	}
	return nil
}

func sinkNames(h *sink.Hub) []string {
	names := []string{}
	if h != nil {
		for _, st := range h.Stats() {
			names = append(names, st.Name)
		}
	}
	return names
}
