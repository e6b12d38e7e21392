package dist

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// built is one run of the dist tool: its packages by format and arch.
type built struct {
	dir     string
	version string // the Version field of the .deb, release included
	deb     map[string]string
	rpm     map[string]string
}

// buildPackages runs the dist tool from the source tree into a new
// directory, as make dist does; extra are its flags.
func buildPackages(t *testing.T, root string, extra ...string) built {
	t.Helper()
	b := built{dir: t.TempDir(), deb: map[string]string{}, rpm: map[string]string{}}
	run(t, root, nil, "go", append([]string{"run", "./internal/tools/dist", "-out", b.dir}, extra...)...)
	for arch, names := range map[string][2]string{"amd64": {"_amd64.deb", ".x86_64.rpm"}, "arm64": {"_arm64.deb", ".aarch64.rpm"}} {
		for i, m := range []map[string]string{b.deb, b.rpm} {
			got, _ := filepath.Glob(filepath.Join(b.dir, "stallmon*"+names[i]))
			if len(got) == 1 {
				m[arch] = got[0]
			} else if len(got) > 1 {
				t.Fatalf("%d packages %s in %s", len(got), names[i], b.dir)
			}
		}
	}
	if b.deb["amd64"] == "" || b.rpm["amd64"] == "" {
		t.Fatalf("no amd64 .deb or .rpm in %s", b.dir)
	}
	b.version = strings.TrimSpace(run(t, "", nil, "dpkg-deb", "-f", b.deb["amd64"], "Version"))
	return b
}

// sameBytes fails t unless every package of a has a byte-identical twin in b.
func sameBytes(t *testing.T, a, b built) {
	t.Helper()
	n := 0
	for _, pair := range [][2]map[string]string{{a.deb, b.deb}, {a.rpm, b.rpm}} {
		for arch, path := range pair[0] {
			x, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			y, err := os.ReadFile(pair[1][arch])
			if err != nil {
				t.Fatalf("second build: %v", err)
			}
			if !bytes.Equal(x, y) {
				t.Errorf("%s differs between two builds of one commit (%d and %d bytes)", filepath.Base(path), len(x), len(y))
			}
			n++
		}
	}
	if n != 4 {
		t.Errorf("compared %d packages, want 4 (.deb and .rpm for amd64 and arm64)", n)
	}
}
