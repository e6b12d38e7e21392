package dashboards

import (
	"os"
	"testing"

	"github.com/stallmon/stallmon/internal/testutil/repo"
	"github.com/stallmon/stallmon/internal/workload"
)

func TestMain(m *testing.M) {
	// The watched process in the end-to-end test is this test binary
	// re-executed as a workload.
	workload.RunIfChild()
	os.Exit(m.Run())
}

// deployFile reads a shipped file, rel being its path under deploy/.
func deployFile(t *testing.T, rel string) []byte {
	t.Helper()
	return repo.Read(t, "deploy/"+rel)
}
