package agent

import (
	"os"
	"testing"

	"github.com/stallmon/stallmon/workload"
)

func TestMain(m *testing.M) {
	workload.RunIfChild()
	os.Exit(m.Run())
}
