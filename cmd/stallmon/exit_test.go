package main

import (
	"errors"
	"testing"

	"github.com/stallmon/stallmon/internal/pipeline"
)

// The user's mistakes exit 2, stallmon's failures 1, a status a command
// chose its own; cobra's flag errors are plain errors, and the user's.
func TestExitCodes(t *testing.T) {
	bad := errors.New("bad")
	for _, c := range []struct {
		err  error
		code int
	}{
		{nil, exitOK},
		{pipelineError(&pipeline.ConfigError{Err: bad}), exitUsage},
		{pipelineError(bad), exitRuntime},
		{&exitError{code: exitKilled}, exitKilled},
		{bad, exitUsage},
	} {
		if code, _ := exitCode(c.err); code != c.code {
			t.Errorf("exitCode(%v) = %d, want %d", c.err, code, c.code)
		}
	}
}
