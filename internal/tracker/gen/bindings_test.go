package gen

import (
	"os"
	"strings"
	"testing"
)

// Package tracker is one source for both architectures, so the constants
// and types bpf2go generates from each object must be the same: an enum
// value or a struct field under an #ifdef of one architecture would decode
// the other's records wrongly. Apart from the build constraint and the
// embedded object, the two files must be identical.
func TestArchBindingsAgree(t *testing.T) {
	for _, stem := range []string{"stallmon", "stallmon_minimal"} {
		x86 := bindings(t, stem+"_x86_bpfel.go")
		arm64 := bindings(t, stem+"_arm64_bpfel.go")
		if len(x86) != len(arm64) {
			t.Errorf("%s: x86 bindings have %d lines, arm64 %d", stem, len(x86), len(arm64))
		}
		for i := range min(len(x86), len(arm64)) {
			if x86[i] != arm64[i] {
				t.Fatalf("%s: x86 and arm64 bindings differ at line %d:\n  x86:   %s\n  arm64: %s", stem, i+1, x86[i], arm64[i])
			}
		}
	}
}

// bindings returns the lines of a generated file, with the two that name
// its architecture blanked.
func bindings(t *testing.T, name string) []string {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatalf("reading generated bindings: %v", err)
	}
	lines := strings.Split(string(b), "\n")
	for i, l := range lines {
		if strings.HasPrefix(l, "//go:build ") || strings.HasPrefix(l, "//go:embed ") {
			lines[i] = ""
		}
	}
	return lines
}
