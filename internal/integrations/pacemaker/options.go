package pacemaker

import (
	"errors"
	"fmt"
	"log/slog"

	"github.com/stallmon/stallmon/internal/sink"
)

// Options are what a user chooses (--pacemaker, --pacemaker-attribute,
// --attrd-updater); the zero value leaves Pacemaker out. An empty
// Attribute is DefaultAttribute.
type Options struct {
	On           bool
	Attribute    string
	AttrdUpdater string
	// AttributeSet and AttrdUpdaterSet say they were chosen, even as "".
	AttributeSet, AttrdUpdaterSet bool
}

// Validate refuses options that mean nothing without --pacemaker, an
// attribute chosen empty, and what New would refuse.
func (o Options) Validate() error {
	if !o.On {
		if o.AttributeSet {
			return errors.New("--pacemaker-attribute needs --pacemaker")
		}
		if o.AttrdUpdater != "" || o.AttrdUpdaterSet {
			return errors.New("--attrd-updater needs --pacemaker")
		}
		return nil
	}
	if o.AttributeSet && o.Attribute == "" {
		return errors.New("--pacemaker-attribute is empty")
	}
	if o.Attribute != "" {
		if err := checkAttribute(o.Attribute); err != nil {
			return fmt.Errorf("--pacemaker: %w", err)
		}
	}
	if _, err := findUpdater(o.AttrdUpdater); err != nil {
		return fmt.Errorf("--pacemaker: %w", err)
	}
	return nil
}

// Sink returns the sink, nil when o leaves Pacemaker out.
func (o Options) Sink(_ sink.Target, log *slog.Logger) (sink.Sink, error) {
	if err := o.Validate(); err != nil || !o.On {
		return nil, err
	}
	s, err := New(Config{Attribute: o.Attribute, AttrdUpdater: o.AttrdUpdater, Logger: log})
	if err != nil {
		return nil, fmt.Errorf("--pacemaker: %w", err)
	}
	return s, nil
}
