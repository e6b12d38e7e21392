package main

import (
	"fmt"
	"log/slog"

	"github.com/spf13/pflag"

	"github.com/stallmon/stallmon/internal/integrations/keepalived"
	"github.com/stallmon/stallmon/internal/sink"
)

type keepalivedFlags struct {
	file string
}

func (o *keepalivedFlags) register(f *pflag.FlagSet) {
	f.StringVar(&o.file, "keepalived-file", "",
		"file for a keepalived track_file (weight 0): 0 while the service is alive, non-zero otherwise (see deploy/keepalived)")
}

func (o *keepalivedFlags) build(_ sinkTarget, log *slog.Logger) (sink.Sink, error) {
	if o.file == "" {
		return nil, nil
	}
	s, err := keepalived.New(o.file, log)
	if err != nil {
		return nil, fmt.Errorf("--keepalived-file: %w", err)
	}
	return s, nil
}
