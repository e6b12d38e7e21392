package agent

import (
	"os"
	"testing"

	"github.com/stallmon/stallmon/workload"
)

func TestMain(m *testing.M) {
	if os.Getenv(workload.EnvVar) == "1" {
		os.Exit(workload.Main(os.Stdin, os.Stdout))
	}
	os.Exit(m.Run())
}
