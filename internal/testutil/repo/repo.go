// Package repo finds files of the source tree for tests that check them
// (deploy/, docs/, README.md), wherever the test's package sits.
package repo

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// Find returns the module's root: the nearest directory above the working
// directory (a test's package directory) that holds go.mod.
func Find() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		up := filepath.Dir(dir)
		if up == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = up
	}
}

// Root is Find for a test, which fails if there is no root.
func Root(t testing.TB) string {
	t.Helper()
	dir, err := Find()
	if err != nil {
		t.Fatalf("locating the source tree: %v", err)
	}
	return dir
}

// Path is rel, a slash-separated path from the root, on this machine.
func Path(t testing.TB, rel string) string {
	t.Helper()
	return filepath.Join(Root(t), filepath.FromSlash(rel))
}

// Read returns the file at rel, failing the test if it cannot.
func Read(t testing.TB, rel string) []byte {
	t.Helper()
	b, err := os.ReadFile(Path(t, rel))
	if err != nil {
		t.Fatalf("reading %s: %v", rel, err)
	}
	return b
}
