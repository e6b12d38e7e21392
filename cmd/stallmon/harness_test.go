package main

import (
	"strconv"
	"testing"

	"github.com/stallmon/stallmon/internal/e2e"
)

type cluster = e2e.Cluster

func newCluster(t *testing.T) *cluster { return e2e.NewCluster(t) }

// startStallmon runs a stallmon subcommand whose stdout is JSON until the
// test ends.
func startStallmon(t *testing.T, args ...string) *e2e.Proc {
	t.Helper()
	return e2e.Start(t, stallmonBin, args...)
}

func itoa(i int) string { return strconv.Itoa(i) }

// startStallmonLogging is startStallmon for a subcommand that logs JSON
// to stderr (listen --log-format json): its log comes on Events too.
func startStallmonLogging(t *testing.T, args ...string) *e2e.Proc {
	t.Helper()
	return e2e.StartLogging(t, stallmonBin, args...)
}
