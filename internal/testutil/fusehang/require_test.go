package fusehang

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stallmon/stallmon/internal/testutil/privtest"
)

// recorder stands in for a testing.TB so the skip-or-fail decision can be
// observed without ending the calling test.
type recorder struct {
	testing.TB
	skipped, failed string
}

func (r *recorder) Helper() {}

func (r *recorder) Skipf(format string, args ...any) { r.skipped = fmt.Sprintf(format, args...) }

func (r *recorder) Fatalf(format string, args ...any) { r.failed = fmt.Sprintf(format, args...) }

// A missing /dev/fuse is treated like a missing privilege: a skip, or a
// failure under privtest.StrictEnv=1.
func TestRequireWithoutDevice(t *testing.T) {
	privtest.Require(t)
	old := devFuse
	t.Cleanup(func() { devFuse = old })
	devFuse = filepath.Join(t.TempDir(), "fuse")

	t.Run("default", func(t *testing.T) {
		t.Setenv(privtest.StrictEnv, "")
		r := &recorder{TB: t}
		Require(r)
		if r.failed != "" || !strings.Contains(r.skipped, "needs FUSE") || !strings.Contains(r.skipped, devFuse) {
			t.Fatalf("skipped=%q failed=%q, want a skip naming %s", r.skipped, r.failed, devFuse)
		}
	})
	t.Run("strict", func(t *testing.T) {
		t.Setenv(privtest.StrictEnv, "1")
		r := &recorder{TB: t}
		Require(r)
		if r.skipped != "" || !strings.Contains(r.failed, "needs FUSE") || !strings.Contains(r.failed, devFuse) {
			t.Fatalf("skipped=%q failed=%q, want a failure naming %s", r.skipped, r.failed, devFuse)
		}
	})
}

func TestRequireWithDevice(t *testing.T) {
	Require(t)
	t.Setenv(privtest.StrictEnv, "1")
	r := &recorder{TB: t}
	Require(r)
	if r.skipped != "" || r.failed != "" {
		t.Fatalf("with %s: skipped=%q failed=%q, want neither", devFuse, r.skipped, r.failed)
	}
}
