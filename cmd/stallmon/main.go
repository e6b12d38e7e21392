// Command stallmon watches a process from the kernel side and stops its
// cluster heartbeat while one of its syscalls is stuck.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code, err := exitCode(newRootCmd().ExecuteContext(ctx))
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "stallmon:", err)
	}
	os.Exit(code)
}
