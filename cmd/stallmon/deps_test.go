package main

import (
	"os/exec"
	"strings"
	"testing"
)

// The shipped binary holds no test code: no workload that turns it into
// a hang generator, no test helper, no demo.
func TestShippedBinaryHoldsNoTestCode(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	const module = "github.com/stallmon/stallmon/"
	n := 0
	for _, pkg := range strings.Fields(string(out)) {
		if !strings.HasPrefix(pkg, module) {
			continue
		}
		n++
		for _, banned := range []string{"internal/workload", "internal/testutil/", "internal/test/", "internal/demo"} {
			if strings.HasPrefix(strings.TrimPrefix(pkg, module), banned) {
				t.Errorf("stallmon depends on %s", pkg)
			}
		}
	}
	if n < 10 {
		t.Fatalf("go list -deps named %d of stallmon's packages, want its whole chain:\n%s", n, out)
	}
}
