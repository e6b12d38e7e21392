package main

import (
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/stallmon/stallmon/internal/demo"
)

func newDemoCmd() *cobra.Command {
	cfg := demo.Config{}
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Show the whole story on this machine: a service hangs, the heartbeat stops, a peer fails over, the service is killed",
		Long: `demo starts an embedded sample service, attaches stallmon to it, listens
to the heartbeat as a peer would (multicast on loopback), then makes one of
the service's syscalls hang for real in the kernel. Needs root.`,
		Example: "  sudo stallmon demo",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			exe, err := os.Executable()
			if err != nil {
				return runtimeError(fmt.Errorf("locating stallmon: %w", err))
			}
			cfg.Exe, cfg.Out = exe, cmd.OutOrStdout()
			if _, err := demo.Run(cmd.Context(), cfg); err != nil {
				return runtimeError(fmt.Errorf("demo: %w", err))
			}
			return nil
		},
	}
	cmd.Flags().DurationVar(&cfg.Budget, "budget", time.Second, "budget of reads on files and devices")
	cmd.Flags().DurationVar(&cfg.KillAfter, "kill-after", 4*time.Second, "kill_after of reads on files and devices")
	return cmd
}
