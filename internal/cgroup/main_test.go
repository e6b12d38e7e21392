package cgroup_test

import (
	"os"
	"testing"

	"github.com/stallmon/stallmon/internal/workload"
)

func TestMain(m *testing.M) {
	workload.RunIfChild()
	os.Exit(m.Run())
}
