package main

import (
	"github.com/spf13/cobra"
)

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "stallmon",
		Short:         "Stop a process's cluster heartbeat while one of its syscalls is stuck",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(newAttachCmd(), newRunCmd(), newListenCmd(), newBudgetsCmd(), newReleaseCmd(), newVersionCmd(), newDoctorCmd())
	return root
}
