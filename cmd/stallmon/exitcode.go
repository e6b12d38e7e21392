package main

import "strconv"

// Exit statuses are part of the interface: supervisors and the demo rely on them.
const (
	exitOK         = 0 // target exited on its own, or command succeeded
	exitRuntime    = 1 // runtime failure: stallmon could not keep watching
	exitUsage      = 2 // bad usage, bad configuration, bad target
	exitKilled     = 3 // target killed by stallmon
	exitUnkillable = 4 // target killed, but it outlived the kill grace first
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

// runtimeError marks err as a failure while running (exit status 1).
func runtimeError(err error) error { return &exitError{code: exitRuntime, err: err} }
