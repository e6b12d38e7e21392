package keepalived

import (
	"fmt"
	"log/slog"

	"github.com/stallmon/stallmon/internal/sink"
)

// Options are what a user chooses (--keepalived-file); the zero value
// leaves keepalived out.
type Options struct {
	File string
}

// Validate checks o without touching the file.
func (o Options) Validate() error { return nil }

// Sink returns the sink, nil when o leaves keepalived out.
func (o Options) Sink(_ sink.Target, log *slog.Logger) (sink.Sink, error) {
	if o.File == "" {
		return nil, nil
	}
	s, err := New(o.File, log)
	if err != nil {
		return nil, fmt.Errorf("--keepalived-file: %w", err)
	}
	return s, nil
}
