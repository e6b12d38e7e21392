package dashboards

import (
	"os"
	"testing"

	"github.com/stallmon/stallmon/workload"
)

func TestMain(m *testing.M) {
	// The watched process in the end-to-end test is this test binary
	// re-executed as a workload.
	workload.RunIfChild()
	os.Exit(m.Run())
}
