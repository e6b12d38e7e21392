package etcd

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/stallmon/stallmon/internal/sink"
)

// Options are what a user chooses (--etcd-*, --on-elected, --on-demoted);
// no Endpoints leaves etcd out. HookTimeout must be positive (the flag's
// default is DefaultHookTimeout); other zero values take the Config
// defaults.
type Options struct {
	Endpoints   []string
	Prefix      string
	TTL         time.Duration
	Election    string
	OnElected   string
	OnDemoted   string
	HookTimeout time.Duration
}

// Validate refuses options that mean nothing without endpoints.
func (o Options) Validate() error {
	if len(o.Endpoints) == 0 {
		if o.Election != "" || o.OnElected != "" || o.OnDemoted != "" {
			return errors.New("--etcd-election, --on-elected and --on-demoted need --etcd-endpoints")
		}
		return nil
	}
	if o.HookTimeout <= 0 {
		return fmt.Errorf("--etcd-hook-timeout must be positive, got %v", o.HookTimeout)
	}
	if err := o.config(sink.Target{NodeID: "check"}, nil).Validate(); err != nil {
		return fmt.Errorf("etcd: %w", err)
	}
	return nil
}

func (o Options) config(t sink.Target, log *slog.Logger) Config {
	return Config{
		Endpoints: o.Endpoints, Prefix: o.Prefix, NodeID: t.NodeID, TTL: o.TTL,
		Election: o.Election, OnElected: o.OnElected, OnDemoted: o.OnDemoted,
		HookTimeout: o.HookTimeout, Logger: log,
	}
}

// Sink returns the sink for t's node, nil when o leaves etcd out.
func (o Options) Sink(t sink.Target, log *slog.Logger) (sink.Sink, error) {
	if err := o.Validate(); err != nil || len(o.Endpoints) == 0 {
		return nil, err
	}
	s, err := New(o.config(t, log))
	if err != nil {
		return nil, fmt.Errorf("etcd: %w", err)
	}
	return s, nil
}
