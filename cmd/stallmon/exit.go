package main

import (
	"errors"
	"strconv"

	"github.com/stallmon/stallmon/internal/pipeline"
)

// Exit statuses are part of the interface: supervisors and scripts rely
// on them.
const (
	exitOK         = 0 // target exited on its own, or command succeeded
	exitRuntime    = 1 // runtime failure: stallmon could not keep watching
	exitUsage      = 2 // bad usage, bad configuration, bad target
	exitKilled     = 3 // target killed by stallmon
	exitUnkillable = 4 // target killed, but it outlived the kill grace first
	exitAbandoned  = 5 // run: stopping, the service outlived its kill; left behind
)

// exitError carries an exit status through cobra's error return.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return "exit status " + strconv.Itoa(e.code)
	}
	return e.err.Error()
}

func (e *exitError) Unwrap() error { return e.err }

// usageError marks err as the caller's fault (exit status 2).
func usageError(err error) error { return &exitError{code: exitUsage, err: err} }

// pipelineError gives a pipeline's error its exit status: the user's
// mistakes are usage errors, anything else a runtime failure.
func pipelineError(err error) error {
	var ce *pipeline.ConfigError
	if errors.As(err, &ce) {
		return usageError(err)
	}
	return &exitError{code: exitRuntime, err: err}
}

// exitCode is the status err ends stallmon with, and the error to print
// (nil for none). cobra reports flag parsing problems as plain errors:
// they are usage errors.
func exitCode(err error) (int, error) {
	var ee *exitError
	switch {
	case err == nil:
		return exitOK, nil
	case errors.As(err, &ee):
		return ee.code, ee.err
	}
	return exitUsage, err
}
