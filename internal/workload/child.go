package workload

import "os"

// RunIfChild turns this process into the workload when it was started as
// one (EnvVar=1) and never returns then. A binary or test binary calls it
// first thing, so it can re-execute itself as the process to watch.
func RunIfChild() {
	if os.Getenv(EnvVar) == "1" {
		os.Exit(Main(os.Stdin, os.Stdout))
	}
}
