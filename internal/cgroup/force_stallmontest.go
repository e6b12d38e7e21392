//go:build stallmontest

package cgroup

import (
	"fmt"
	"os"
)

// A stallmon built with -tags stallmontest (the e2e tests' second build,
// never the shipped one) takes the freeze path when
// STALLMON_TEST_FREEZE_KILL names a file, and appends each cgroup it
// kills that way to the file, so a test knows which path ran.
func init() {
	log := os.Getenv("STALLMON_TEST_FREEZE_KILL")
	if log == "" {
		return
	}
	forceFreezeKill.Store(true)
	freezeKillDone = func(d Dir, err error) {
		f, ferr := os.OpenFile(log, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		if ferr != nil {
			return
		}
		fmt.Fprintf(f, "%s %v\n", d.Path, err)
		f.Close()
	}
}
