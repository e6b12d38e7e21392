package dist

import (
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stallmon/stallmon/internal/testutil/privtest"
	"github.com/stallmon/stallmon/internal/testutil/repo"
)

// DistTestEnv set to 1 runs TestPackages: make test does, in a step of
// its own after the host's tests, so that its builds do not load the
// machine under their timing-sensitive ones.
const DistTestEnv = "STALLMON_DISTTEST"

// make dist's packages, built twice (byte for byte the same), and once
// more at a higher version for the upgrade, then installed for real.
func TestPackages(t *testing.T) {
	if os.Getenv(DistTestEnv) != "1" {
		t.Skipf("builds four packages and a Debian root for minutes: run `make disttest` (or set %s=1)", DistTestEnv)
	}
	privtest.Require(t)
	for _, cmd := range []string{"mmdebstrap", "lintian", "rpm", "rpmlint", "dpkg-deb", "qemu-aarch64-static", "systemd-analyze", "chroot"} {
		if _, err := exec.LookPath(cmd); err != nil {
			privtest.Unavailable(t, "needs "+cmd+" (make test installs it): "+err.Error())
			return
		}
	}
	root := repo.Root(t)
	start := time.Now()
	first := buildPackages(t, root)
	t.Logf("make dist's four packages, version %s: %v", first.version, time.Since(start).Round(time.Second))
	start = time.Now()
	sameBytes(t, first, buildPackages(t, root))
	t.Logf("built again, compared: %v", time.Since(start).Round(time.Second))
	// A version that sorts after the first in dpkg and rpm alike.
	newer := buildPackages(t, root, "-arch", "amd64", "-version", strings.TrimSuffix(first.version, "-1")+".1")
	describe := strings.TrimSpace(run(t, root, nil, "git", "describe", "--tags", "--always", "--dirty"))

	start = time.Now()
	tarball := cachedRoot(t, root)
	t.Logf("bookworm root: %v", time.Since(start).Round(time.Second))
	t.Run("deb", func(t *testing.T) { testDeb(t, tarball, first.deb["amd64"], newer, describe) })
	t.Run("lintian", func(t *testing.T) { testLintian(t, first.deb["amd64"], first.deb["arm64"]) })
	t.Run("arm64", func(t *testing.T) { testArm64(t, first) })
	t.Run("rpm", func(t *testing.T) { testRPM(t, first, newer) })
}
