package pacemaker

import (
	"fmt"
	"os"
	"testing"

	"github.com/stallmon/stallmon/internal/testutil/pacemakertest"
)

// TestMain stops the cluster the tests share (started by the first test
// that needs it: it takes seconds, not worth one per test).
func TestMain(m *testing.M) {
	code := m.Run()
	if err := pacemakertest.StopShared(); err != nil {
		fmt.Fprintf(os.Stderr, "stopping the test cluster: %v\n", err)
		if code == 0 {
			code = 1
		}
	}
	os.Exit(code)
}
