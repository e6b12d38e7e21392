package keepalived

import (
	"fmt"
	"log/slog"
	"path/filepath"

	"github.com/stallmon/stallmon/internal/sink"
)

// Options are what a user chooses (--keepalived-file); the zero value
// leaves keepalived out.
type Options struct {
	File string
}

// Validate checks o without writing anything: the file's directory must
// exist and be writable.
func (o Options) Validate() error {
	if o.File == "" {
		return nil
	}
	abs, err := filepath.Abs(o.File)
	if err != nil {
		return fmt.Errorf("--keepalived-file: %s: %w", o.File, err)
	}
	if err := checkDir(abs); err != nil {
		return fmt.Errorf("--keepalived-file: %w", err)
	}
	return nil
}

// Sink returns the sink, nil when o leaves keepalived out.
func (o Options) Sink(_ sink.Target, log *slog.Logger) (sink.Sink, error) {
	if err := o.Validate(); err != nil || o.File == "" {
		return nil, err
	}
	s, err := New(o.File, log)
	if err != nil {
		return nil, fmt.Errorf("--keepalived-file: %w", err)
	}
	return s, nil
}
