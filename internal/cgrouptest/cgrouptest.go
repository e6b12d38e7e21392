// Package cgrouptest gives a test a cgroup of its own, removed when the
// test ends.
package cgrouptest

import (
	"fmt"
	"os"
	"testing"

	"github.com/stallmon/stallmon/cgroup"
	"github.com/stallmon/stallmon/internal/privtest"
)

// New creates an empty cgroup under the cgroup v2 root. Its cleanup thaws
// it, moves whatever is left in it back to the root, and removes it.
func New(t testing.TB) cgroup.Dir {
	t.Helper()
	privtest.Require(t)
	root, err := cgroup.Root()
	if err != nil {
		t.Fatal(err)
	}
	name := fmt.Sprintf("stallmon-test-%d-%s", os.Getpid(), sanitize(t.Name()))
	d, err := cgroup.Mkdir(root, name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		d.Freeze(false)
		top := cgroup.Dir{Path: root}
		if pids, err := d.Procs(); err == nil {
			for _, pid := range pids {
				top.Add(pid)
			}
		}
		if err := d.Remove(); err != nil {
			t.Errorf("cgrouptest: %v", err)
		}
	})
	return d
}

func sanitize(s string) string {
	b := []byte(s)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
			b[i] = '_'
		}
	}
	return string(b)
}
