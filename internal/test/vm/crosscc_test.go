package vm

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// toolchain is a cross-compiler unpacked under root, not installed:
// Debian's gcc-12-aarch64-linux-gnu conflicts with gcc-multilib, which
// make test installs for the ia32 tests, and installing it would remove
// gcc-multilib from the machine.
type toolchain struct{ root string }

// crossToolchain downloads and unpacks the host's build of cc (e.g.
// gcc-12) targeting cross (e.g. aarch64-linux-gnu), with its preprocessor
// and binutils. gcc finds its cc1 and as relative to its own path; the
// binutils' shared libraries are found through env.
func crossToolchain(ctx context.Context, cc, cross, cache string) (*toolchain, error) {
	tc := &toolchain{root: filepath.Join(cache, "toolchains", cross+"-"+cc)}
	if err := os.MkdirAll(tc.root, 0o755); err != nil {
		return nil, fmt.Errorf("creating %s: %w", tc.root, err)
	}
	ver := strings.TrimPrefix(cc, "gcc-")
	for _, pkg := range []string{cc + "-" + cross, "cpp-" + ver + "-" + cross, "binutils-" + cross} {
		deb, err := systemRepo.download(ctx, pkg, filepath.Join(cache, "debs"))
		if err != nil {
			return nil, err
		}
		if err := extractDeb(ctx, deb, tc.root); err != nil {
			return nil, err
		}
	}
	return tc, nil
}

// env returns base with the toolchain first on PATH and its libraries on
// LD_LIBRARY_PATH.
func (tc *toolchain) env(base []string) []string {
	path, libs := filepath.Join(tc.root, "usr", "bin"), filepath.Join(tc.root, "usr", "lib", "x86_64-linux-gnu")
	out := make([]string, 0, len(base)+2)
	for _, kv := range base {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			path += ":" + v
			continue
		}
		if v, ok := strings.CutPrefix(kv, "LD_LIBRARY_PATH="); ok {
			libs += ":" + v
			continue
		}
		out = append(out, kv)
	}
	return append(out, "PATH="+path, "LD_LIBRARY_PATH="+libs)
}

func TestToolchainEnv(t *testing.T) {
	tc := &toolchain{root: "/c/tc"}
	got := tc.env([]string{"HOME=/root", "PATH=/usr/bin:/bin", "LD_LIBRARY_PATH=/opt/lib"})
	want := []string{"HOME=/root", "PATH=/c/tc/usr/bin:/usr/bin:/bin", "LD_LIBRARY_PATH=/c/tc/usr/lib/x86_64-linux-gnu:/opt/lib"}
	if !slices.Equal(got, want) {
		t.Fatalf("env = %q, want %q", got, want)
	}
}
