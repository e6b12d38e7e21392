package main

import (
	"errors"
	"fmt"
	"log/slog"

	"github.com/spf13/pflag"

	"github.com/stallmon/stallmon/internal/integrations/pacemaker"
	"github.com/stallmon/stallmon/internal/sink"
)

type pacemakerOptions struct {
	on           bool
	attribute    string
	attrdUpdater string
	flags        *pflag.FlagSet
}

func (o *pacemakerOptions) register(f *pflag.FlagSet) {
	o.flags = f
	f.BoolVar(&o.on, "pacemaker", false,
		"set a Pacemaker node attribute from the verdict: green while the target is alive, red otherwise and when stallmon stops")
	f.StringVar(&o.attribute, "pacemaker-attribute", pacemaker.DefaultAttribute,
		"node attribute for --pacemaker, one per stallmon on a node: a #health- name acts with node-health-strategy=migrate-on-red, another needs a location rule")
	f.StringVar(&o.attrdUpdater, "attrd-updater", "", "attrd_updater program for --pacemaker (default: found on PATH)")
}

func (o *pacemakerOptions) build(_ sinkTarget, log *slog.Logger) (sink.Sink, error) {
	if !o.on {
		for _, name := range []string{"pacemaker-attribute", "attrd-updater"} {
			if o.flags != nil && o.flags.Changed(name) {
				return nil, fmt.Errorf("--%s needs --pacemaker", name)
			}
		}
		return nil, nil
	}
	if o.attribute == "" {
		return nil, errors.New("--pacemaker-attribute is empty")
	}
	s, err := pacemaker.New(pacemaker.Config{Attribute: o.attribute, AttrdUpdater: o.attrdUpdater, Logger: log})
	if err != nil {
		return nil, fmt.Errorf("--pacemaker: %w", err)
	}
	return s, nil
}
