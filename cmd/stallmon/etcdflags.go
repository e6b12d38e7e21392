package main

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/spf13/pflag"

	"github.com/stallmon/stallmon/internal/integrations/etcd"
	"github.com/stallmon/stallmon/internal/sink"
)

type etcdOptions struct {
	endpoints   []string
	prefix      string
	ttl         time.Duration
	election    string
	onElected   string
	onDemoted   string
	hookTimeout time.Duration
}

func (o *etcdOptions) register(f *pflag.FlagSet) {
	f.StringSliceVar(&o.endpoints, "etcd-endpoints", nil,
		"etcd client URLs, comma-separated: keep PREFIXnodes/NODE-ID alive there while the service is (empty: off)")
	f.StringVar(&o.prefix, "etcd-prefix", etcd.DefaultPrefix, "prefix of the keys stallmon writes in etcd (ends with /)")
	f.DurationVar(&o.ttl, "etcd-ttl", etcd.DefaultTTL,
		"etcd lease TTL, whole seconds, at least 2s: how long the key outlives a stall or stallmon itself")
	f.StringVar(&o.election, "etcd-election", "",
		"campaign in this etcd election (etcdctl elect NAME) while the service is alive; resign at a stall")
	f.StringVar(&o.onElected, "on-elected", "",
		"command (/bin/sh -c) run when this node wins --etcd-election; env STALLMON_EVENT, STALLMON_NODE, STALLMON_ELECTION, STALLMON_STATE, STALLMON_PID, STALLMON_REASON")
	f.StringVar(&o.onDemoted, "on-demoted", "", "command (/bin/sh -c) run when this node loses --etcd-election (same env)")
	f.DurationVar(&o.hookTimeout, "etcd-hook-timeout", etcd.DefaultHookTimeout,
		"kill an --on-elected/--on-demoted command (its process group) after this long")
}

func (o *etcdOptions) build(t sinkTarget, log *slog.Logger) (sink.Sink, error) {
	if len(o.endpoints) == 0 {
		if o.election != "" || o.onElected != "" || o.onDemoted != "" {
			return nil, errors.New("--etcd-election, --on-elected and --on-demoted need --etcd-endpoints")
		}
		return nil, nil
	}
	if o.hookTimeout <= 0 {
		return nil, fmt.Errorf("--etcd-hook-timeout must be positive, got %v", o.hookTimeout)
	}
	s, err := etcd.New(etcd.Config{
		Endpoints: o.endpoints, Prefix: o.prefix, NodeID: t.NodeID, TTL: o.ttl,
		Election: o.election, OnElected: o.onElected, OnDemoted: o.onDemoted,
		HookTimeout: o.hookTimeout, Logger: log,
	})
	if err != nil {
		return nil, fmt.Errorf("etcd: %w", err)
	}
	return s, nil
}
