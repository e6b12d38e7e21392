package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/stallmon/stallmon/internal/pipeline"
)

type releaseOptions struct {
	node   string
	pinDir string
}

func newReleaseCmd() *cobra.Command {
	o := releaseOptions{}
	cmd := &cobra.Command{
		Use:   "release --node-id NODE",
		Short: "Remove the --gate-egress gate a stallmon left pinned for a node",
		Long: `release removes the egress gate that 'stallmon attach' or 'stallmon run'
with --gate-egress pinned for NODE: the service's packets to its gated
destinations pass again, whoever vouches for it. The gate outlives the
stallmon that made it, closed, so that a killed stallmon silences the
service; run release when stallmon is uninstalled, or stopped for good
without --gate-egress-release-on-exit (see docs/egress.md).`,
		Example:      `  sudo stallmon release --node-id "$(hostname)/nginx"`,
		Args:         cobra.NoArgs,
		SilenceUsage: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := pipeline.ReleaseEgress(o.pinDir, o.node); err != nil {
				return pipelineError(err)
			}
			_, err := fmt.Fprintf(cmd.OutOrStdout(), "released the egress gate of %s\n", o.node)
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.node, "node-id", "", "node id the gate is pinned under (as --node-id of attach or run, or its default HOST/SERVICE)")
	f.StringVar(&o.pinDir, "gate-egress-pin-dir", pipeline.DefaultEgressPinDir, "directory on a BPF file system where the gate is pinned")
	return cmd
}
