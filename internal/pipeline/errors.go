package pipeline

import (
	"errors"

	"github.com/stallmon/stallmon/internal/tracker"
)

// ConfigError is an error the user can fix: a bad flag, table or target.
// It reads as the error it wraps.
type ConfigError struct{ Err error }

func (e *ConfigError) Error() string { return e.Err.Error() }
func (e *ConfigError) Unwrap() error { return e.Err }

// configErr marks err as the user's; nil stays nil.
func configErr(err error) error {
	if err == nil {
		return nil
	}
	var ce *ConfigError
	if errors.As(err, &ce) {
		return err
	}
	return &ConfigError{Err: err}
}

// attachErr classifies a failed attach: a bad target is the user's, any
// other failure is not.
func attachErr(err error) error {
	switch {
	case errors.Is(err, tracker.ErrNoProcess), errors.Is(err, tracker.ErrZombie), errors.Is(err, tracker.ErrNotProcess),
		errors.Is(err, tracker.ErrNoCgroup):
		return configErr(err)
	}
	return err
}
