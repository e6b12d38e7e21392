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
	// refused marks a line older than stallmon supports: its kernel
	// boots once, for refusedBoot, instead of the suites and scenarios.
	refused bool
}

var kernelSources = []kernelSource{
	{name: "bookworm"},
	{name: "bookworm-backports", suite: "bookworm-backports", via: "bookworm"},
	// Linux 5.10: stallmon needs 5.15 (BPF task storage in tracing
	// programs, bpf_task_pt_regs), and must say so rather than half attach.
	{name: "bullseye-security", suite: "bullseye-security", via: "bookworm-security", refused: true},
}

const defaultKernels = "bookworm,bookworm-backports,bullseye-security"

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
	if src.suite == "" {
		return systemRepo, nil
	}
	uris, err := suiteURIs(ctx)
	if err != nil {
		return nil, err
	}
	uri, ok := uris[src.via]
	if !ok {
		return nil, fmt.Errorf("%s: no archive in the apt sources serves %s, whose host would serve %s (apt knows %v)",
			src.name, src.via, src.suite, uris)
	}
	return privateRepo(filepath.Join(cache, "apt", src.suite), uri, src.suite)
}

// resolveKernel finds the current kernel of src (the one the
// linux-image-amd64 meta package points at), downloads it, and extracts
// its vmlinuz.
func resolveKernel(ctx context.Context, src kernelSource, cache string) (*kernel, error) {
	repo, err := repoFor(ctx, src, cache)
	if err != nil {
		return nil, err
	}
	deps, err := repo.resolveDepends(ctx, "linux-image-amd64")
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
		return nil, fmt.Errorf("%s: linux-image-amd64 depends on no linux-image-* package (%v)", src.name, deps)
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
