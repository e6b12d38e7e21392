// Package workloadtest starts the running test binary as a workload; the
// test package's TestMain must call workload.RunIfChild first.
package workloadtest

import (
	"context"
	"os"
	"testing"

	"github.com/stallmon/stallmon/internal/workload"
)

// Start runs this test binary as a workload process, stopped when the
// test ends.
func Start(t testing.TB) *workload.Proc {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatalf("locating test binary: %v", err)
	}
	p, err := workload.Start(context.Background(), exe, nil, nil)
	if err != nil {
		t.Fatalf("starting workload: %v", err)
	}
	t.Cleanup(func() { p.Stop() })
	return p
}

// StartChild runs this test binary as a workload forked by a shell, which
// is Proc.Parent; both are stopped when the test ends.
func StartChild(t testing.TB) *workload.Proc {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatalf("locating test binary: %v", err)
	}
	p, err := workload.StartChild(context.Background(), exe, nil, nil)
	if err != nil {
		t.Fatalf("starting workload: %v", err)
	}
	t.Cleanup(func() { p.Stop() })
	return p
}
