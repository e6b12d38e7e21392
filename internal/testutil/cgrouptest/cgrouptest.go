// Package cgrouptest gives a test a cgroup of its own, removed when the
// test ends.
package cgrouptest

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/stallmon/stallmon/internal/cgroup"
	"github.com/stallmon/stallmon/internal/testutil/privtest"
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
		if err := removeTree(cgroup.Dir{Path: root}, d.Path); err != nil {
			t.Errorf("cgrouptest: %v", err)
		}
	})
	return d
}

// removeTree thaws the cgroup at path, removes its descendants first,
// moves what is left in each back to root, and removes it.
func removeTree(root cgroup.Dir, path string) error {
	d := cgroup.Dir{Path: path}
	d.Freeze(false)
	entries, err := os.ReadDir(path)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if e.IsDir() {
			if err := removeTree(root, filepath.Join(path, e.Name())); err != nil {
				return err
			}
		}
	}
	if pids, err := d.Procs(); err == nil {
		for _, pid := range pids {
			root.Add(pid)
		}
	}
	return d.Remove()
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
