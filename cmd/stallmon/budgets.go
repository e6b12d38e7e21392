package main

import (
	"github.com/spf13/cobra"

	"github.com/stallmon/stallmon/internal/pipeline"
)

func newBudgetsCmd() *cobra.Command {
	var o tableOptions
	cmd := &cobra.Command{
		Use:   "budgets",
		Short: "Print the effective per-syscall timeout table",
		Long: `budgets prints the timeout table attach would use with the same flags,
as YAML that --config accepts, each rule followed by a comment naming
where it came from: "# from FILE" (the table or a drop-in), "# from
builtin", "# from the default rule" (a state or syscall that inherits
it). Syscall names are those of this machine's architecture.`,
		Example: `  stallmon budgets
  stallmon budgets --config /etc/stallmon/budgets.yaml --budget 2s`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			t, err := pipeline.LoadTable(o.table())
			if err != nil {
				return usageError(err)
			}
			return t.Format(cmd.OutOrStdout())
		},
	}
	o.register(cmd.Flags())
	return cmd
}
