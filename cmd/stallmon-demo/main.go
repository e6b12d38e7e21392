// Command stallmon-demo tells stallmon's story on this machine: a sample
// service, stallmon attached to it, a peer listening to its heartbeat, then
// one of the service's syscalls hanging for real in the kernel. The heartbeat
// stops, the peer fails over, the service is killed. Needs root.
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
