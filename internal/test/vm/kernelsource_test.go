package vm

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// kernelSource is a line of Debian kernels that apt can reach.
type kernelSource struct {
	name string // what VMTEST_KERNELS calls it
	// suite is fetched through a private sources list on the archive that
	// serves via in the system's configuration; empty means the system's
	// configuration as it is.
	suite, via string
	// arch is the kernel's and the guest's architecture; nil is amd64.
	arch *guestArch
	// subset, when set, is what this line runs instead of every suite
	// and scenario: an emulated architecture's lane, which must fit in
	// CI.
	subset *subset
}

// subset is a lane's selection of the guest suites and scenario boots.
type subset struct {
	pkgs []string // packages whose test binaries go into the guest
	run  string   // their -test.run pattern
	// skip is their -test.skip pattern beside other lanes: a lane
	// booted alone runs everything, and VMTEST_RUN drops it.
	skip      string
	scenarios []scenarioBoot // the scenario boots it makes
	why       string         // what the lane leaves out, and why, for the log
	// noFaultmod, when set, says why the lane builds no test module.
	noFaultmod string
}

// guestArch returns the line's architecture.
func (s kernelSource) guestArch() *guestArch {
	if s.arch == nil {
		return amd64
	}
	return s.arch
}

var kernelSources = []kernelSource{
	{name: "bookworm"},
	{name: "bookworm-backports", suite: "bookworm-backports", via: "bookworm"},
	// Linux 5.10: the minimal BPF object (bullseyeSubset); the sampled
	// tracker, which needs bpf_task_pt_regs, is refused (refusedBoot).
	{name: "bullseye-security", suite: "bullseye-security", via: "bookworm-security", subset: bullseyeSubset},
	// Debian's arm64 6.1, emulated (TCG): the subset proves the arm64
	// object loads and judges (arm64Subset).
	{name: "bookworm-arm64", suite: "bookworm-security", via: "bookworm-security", arch: arm64, subset: arm64Subset},
	// Debian's arm64 5.10, emulated: the minimal object on arm64, whose
	// JIT before 5.18 has no atomic but add (arm64MinimalSubset). From
	// bullseye itself: the mirror's bullseye-security pool lacks the
	// arm64 image its index names (404).
	{name: "bullseye-arm64", suite: "bullseye", via: "bookworm", arch: arm64, subset: arm64MinimalSubset},
}

// hostSuite is the Debian release of the host, whose busybox the guests
// of another architecture run.
const hostSuite = "bookworm"

const defaultKernels = "bookworm,bookworm-backports,bullseye-security,bookworm-arm64,bullseye-arm64"

// kernel is one resolved and downloaded kernel.
type kernel struct {
	source  kernelSource
	repo    *aptRepo
	version string // uname -r, e.g. 6.1.0-56-amd64
	vmlinuz string
	image   string // the linux-image .deb
	root    string // where its packages are extracted
}

// repoFor returns the apt configuration that reaches src.
func repoFor(ctx context.Context, src kernelSource, cache string) (*aptRepo, error) {
	if src.suite == "" && src.arch == nil {
		return systemRepo, nil
	}
	return archRepo(ctx, src.name, src.suite, src.via, src.guestArch(), cache)
}

// archRepo is a private apt configuration for suite of architecture a,
// on the archive that serves via in the system's sources (the host's own
// architecture is the only one they list).
func archRepo(ctx context.Context, name, suite, via string, a *guestArch, cache string) (*aptRepo, error) {
	uris, err := suiteURIs(ctx)
	if err != nil {
		return nil, err
	}
	uri, ok := uris[via]
	if !ok {
		return nil, fmt.Errorf("%s: no archive in the apt sources serves %s, whose host would serve %s (apt knows %v)",
			name, via, suite, uris)
	}
	dir := suite
	if a != amd64 {
		dir += "-" + a.debian
	}
	return privateRepo(filepath.Join(cache, "apt", dir), uri, suite, a.debian)
}

// resolveKernel finds the current kernel of src (the one the
// linux-image-ARCH meta package points at), downloads it, and extracts
// its vmlinuz.
func resolveKernel(ctx context.Context, src kernelSource, cache string) (*kernel, error) {
	repo, err := repoFor(ctx, src, cache)
	if err != nil {
		return nil, err
	}
	meta := "linux-image-" + src.guestArch().debian
	deps, err := repo.resolveDepends(ctx, meta)
	if err != nil {
		return nil, fmt.Errorf("resolving %s's kernel: %w", src.name, err)
	}
	var image string
	for _, d := range deps {
		if strings.HasPrefix(d, "linux-image-") {
			image = d
			break
		}
	}
	if image == "" {
		return nil, fmt.Errorf("%s: %s depends on no linux-image-* package (%v)", src.name, meta, deps)
	}
	version := strings.TrimPrefix(image, "linux-image-")
	k := &kernel{source: src, repo: repo, version: version, root: filepath.Join(cache, "kernels", version)}
	deb, err := repo.download(ctx, image, filepath.Join(cache, "debs"))
	if err != nil {
		return nil, err
	}
	k.image = deb
	// Only the kernel: the modules in the package are several hundred MB
	// unpacked; the guest needs two, taken one by one (kmods_test.go).
	k.vmlinuz = filepath.Join(k.root, "boot", "vmlinuz-"+version)
	if err := extractMember(ctx, deb, k.root, "./boot/vmlinuz-"+version); err != nil {
		return nil, err
	}
	return k, nil
}

// extractMember extracts one file of a .deb under root, unless it is
// there already.
func extractMember(ctx context.Context, deb, root, member string) error {
	dst := filepath.Join(root, member)
	if _, err := os.Stat(dst); err == nil {
		return nil
	}
	if err := os.MkdirAll(root, 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", root, err)
	}
	sh := `dpkg-deb --fsys-tarfile "$1" | tar -x -C "$2" "$3"`
	if out, err := exec.CommandContext(ctx, "sh", "-c", sh, "sh", deb, root, member).CombinedOutput(); err != nil {
		return fmt.Errorf("extracting %s from %s: %w: %s", member, filepath.Base(deb), err, out)
	}
	return nil
}

// extractDeb unpacks a whole .deb under root once; a stamp file records a
// complete extraction so that an interrupted one is redone.
func extractDeb(ctx context.Context, deb, root string) error {
	stamp := filepath.Join(root, ".extracted-"+filepath.Base(deb))
	if _, err := os.Stat(stamp); err == nil {
		return nil
	}
	if out, err := exec.CommandContext(ctx, "dpkg", "-x", deb, root).CombinedOutput(); err != nil {
		return fmt.Errorf("dpkg -x %s: %w: %s", filepath.Base(deb), err, out)
	}
	return os.WriteFile(stamp, nil, 0o644)
}
