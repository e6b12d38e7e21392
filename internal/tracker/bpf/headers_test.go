// Package bpf holds the kernel side's C source, which bpf2go compiles into
// ../gen. Its Go side is only this test.
package bpf

import (
	"cmp"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stallmon/stallmon/internal/testutil/privtest"
)

// Every header must compile on its own, for each architecture the objects
// are built for: one that leans on what stallmon.c happened to include
// before it breaks the day the includes are reordered, or a test program
// includes it alone. Each is compiled with the flags bpf2go gets from
// ../gen/gen.go, included twice to prove its guard.
func TestHeadersCompileAlone(t *testing.T) {
	clang := cmp.Or(os.Getenv("BPF2GO_CC"), "clang-19")
	if _, err := exec.LookPath(clang); err != nil {
		privtest.Unavailable(t, "needs "+clang+" (make deps-bpf installs it): "+err.Error())
		return
	}
	privtest.RequireFile(t, "/usr/include/bpf/bpf_helpers.h", "libbpf-dev; make deps-bpf installs it")
	genDir, err := filepath.Abs("../gen")
	if err != nil {
		t.Fatal(err)
	}
	builds := generateFlags(t, filepath.Join(genDir, "gen.go"))
	headers, err := filepath.Glob("*.h")
	if err != nil {
		t.Fatal(err)
	}
	var checked int
	for _, h := range headers {
		if h == "vmlinux.h" {
			continue // bpftool's dump, not ours
		}
		checked++
		for i, flags := range builds {
			for _, arch := range []string{"x86", "arm64"} {
				t.Run(fmt.Sprintf("%s/%s/%d", h, arch, i), func(t *testing.T) {
					t.Parallel()
					src := filepath.Join(t.TempDir(), "alone.c")
					include := "#include \"" + h + "\"\n"
					if err := os.WriteFile(src, []byte(include+include), 0o644); err != nil {
						t.Fatal(err)
					}
					args := append([]string{"-target", "bpfel", "-D__TARGET_ARCH_" + arch}, flags...)
					cmd := exec.Command(clang, append(args, "-c", src, "-o", os.DevNull)...)
					// gen.go's -I is relative to the directory go generate runs in.
					cmd.Dir = genDir
					if out, err := cmd.CombinedOutput(); err != nil {
						t.Errorf("%s does not compile on its own for %s with %q: %v\n%s", h, arch, flags, err, out)
					}
				})
			}
		}
	}
	if checked == 0 {
		t.Fatal("no headers found beside stallmon.c")
	}
}

// generateFlags returns the C flags that each of gen.go's bpf2go lines
// passes after "--": one per object (the full one, the minimal one).
func generateFlags(t *testing.T, genGo string) [][]string {
	t.Helper()
	b, err := os.ReadFile(genGo)
	if err != nil {
		t.Fatalf("reading the bpf2go line: %v", err)
	}
	var all [][]string
	for line := range strings.Lines(string(b)) {
		if !strings.HasPrefix(line, "//go:generate ") || !strings.Contains(line, "bpf2go") {
			continue
		}
		_, cflags, ok := strings.Cut(line, " -- ")
		if !ok {
			t.Fatalf("the bpf2go line in %s passes no C flags: %s", genGo, line)
		}
		all = append(all, strings.Fields(cflags))
	}
	if len(all) == 0 {
		t.Fatalf("no bpf2go line in %s", genGo)
	}
	return all
}
