package main

import (
	"github.com/spf13/cobra"

	"github.com/stallmon/stallmon/internal/doctor"
)

func newDoctorCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "doctor",
		Short: "Probe this kernel for what stallmon needs, and say whether it can run here",
		Long: `doctor probes the running kernel for each feature the tracker uses (kernel
BTF, program and map types, helpers per program type, the atomic
instructions through a trial load) and prints what it found, the first
mainline kernel that has each (unknown where a probe could not tell),
where the kernel's BTF is read from, whether stallmon holds CAP_KILL,
which variant would load, and whether stallmon can run here. Nothing it loads outlives it. It needs the
privileges attach needs.

Exit status 0: stallmon can run here; 1: it cannot, the missing feature
named (or the probes could not run).`,
		Example: `  sudo stallmon doctor
  sudo stallmon doctor --json | jq .can_run`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			r, err := doctor.Check()
			write := doctor.WriteText
			if asJSON {
				write = doctor.WriteJSON
			}
			if werr := write(cmd.OutOrStdout(), r); werr != nil && err == nil {
				err = werr
			}
			if err != nil {
				return &exitError{code: exitRuntime, err: err}
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the report as one JSON object")
	return cmd
}
