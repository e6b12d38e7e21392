// Command stallmon watches a process from the kernel side and stops its
// cluster heartbeat while one of its syscalls is stuck.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/stallmon/stallmon/internal/workload"
)

func main() {
	// The demo's sample service is this binary re-executed: one file to
	// ship, and the service does real syscalls that can really hang.
	workload.RunIfChild()
	os.Exit(run())
}

func run() int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	err := newRootCmd().ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	var ec *exitError
	if errors.As(err, &ec) {
		if ec.err != nil {
			fmt.Fprintln(os.Stderr, "stallmon:", ec.err)
		}
		return ec.code
	}
	// cobra reports flag parsing problems as plain errors: they are usage errors.
	fmt.Fprintln(os.Stderr, "stallmon:", err)
	return exitUsage
}
