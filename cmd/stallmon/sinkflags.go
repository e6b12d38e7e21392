package main

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/spf13/pflag"

	"github.com/stallmon/stallmon/internal/sink"
)

// sinkTarget is what an integration knows of the watched service when
// its sink is built.
type sinkTarget struct {
	// NodeID names this node: --node-id, or the host name.
	NodeID string
	// PID is the watched process for attach --pid, 0 otherwise.
	PID int
	// Cgroup is the watched cgroup's absolute path for attach --cgroup,
	// "" otherwise. Under run, both are unset: stallmon is the
	// service's main process itself.
	Cgroup string
}

// sinkFlags are one integration's flags.
type sinkFlags interface {
	register(f *pflag.FlagSet)
	// build returns the integration's sink, or nil when its flags are
	// unset. An error is the user's: it is reported as bad usage.
	build(t sinkTarget, log *slog.Logger) (sink.Sink, error)
}

// integrations lists every cluster-manager integration; each lives in
// its own file (keepalivedflags.go, ...) and package under integrations/.
func integrations() []sinkFlags {
	return []sinkFlags{
		&keepalivedFlags{},
		&etcdOptions{},
		&pacemakerOptions{},
		&systemdFlags{},
	}
}

type sinkOptions struct {
	all []sinkFlags
}

func (o *sinkOptions) register(f *pflag.FlagSet) {
	o.all = integrations()
	for _, s := range o.all {
		s.register(f)
	}
}

// build returns the configured sinks and the function that closes them.
func (o *sinkOptions) build(t sinkTarget, log *slog.Logger) ([]sink.Sink, func(), error) {
	var sinks []sink.Sink
	closeAll := func() {
		for _, s := range sinks {
			if err := s.Close(); err != nil {
				log.Warn("closing sink", "sink", s.Name(), "err", err)
			}
		}
	}
	for _, f := range o.all {
		s, err := f.build(t, log)
		if err != nil {
			closeAll()
			return nil, func() {}, err
		}
		if s != nil {
			sinks = append(sinks, s)
		}
	}
	names := map[string]bool{}
	for _, s := range sinks {
		if names[s.Name()] {
			closeAll()
			return nil, func() {}, fmt.Errorf("two sinks named %q", s.Name())
		}
		names[s.Name()] = true
	}
	return sinks, closeAll, nil
}

// sinkFlush bounds how long exiting waits for the integrations to apply
// the last verdict (FENCED, LEAVING) before closing them.
const sinkFlush = 3 * time.Second

func sinkNames(h *sink.Hub) []string {
	names := []string{}
	if h != nil {
		for _, st := range h.Stats() {
			names = append(names, st.Name)
		}
	}
	return names
}
