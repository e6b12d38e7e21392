// Command stallmon-demo tells stallmon's story on this machine: a sample
// service whose heartbeat thread sends to a multicast group, stallmon
// attached to it with --gate-egress on that group, the service's own peer
// (a plain listener) and a peer of stallmon's heartbeat, then one of the
// service's syscalls hanging for real in the kernel. At the stall the gate
// silences the service's own heartbeat, so its peer takes over, and
// stallmon's peer, sent STALLED, fails over; then the service is killed.
// Needs root.
//
// The sample service is this binary re-executed, driven over its stdin
// (internal/workload): it lives here, never in the stallmon binary.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/stallmon/stallmon/internal/demo"
	"github.com/stallmon/stallmon/internal/workload"
)

func main() {
	workload.RunIfChild()
	cfg := demo.Config{Out: os.Stdout}
	flag.DurationVar(&cfg.Budget, "budget", time.Second, "budget of reads on files and devices")
	flag.DurationVar(&cfg.KillAfter, "kill-after", 4*time.Second, "kill_after of reads on files and devices")
	flag.Parse()
	exe, err := os.Executable()
	if err != nil {
		fmt.Fprintln(os.Stderr, "stallmon-demo: locating this binary:", err)
		os.Exit(1)
	}
	cfg.Exe = exe
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	_, err = demo.Run(ctx, cfg)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "stallmon-demo:", err)
		os.Exit(1)
	}
}
