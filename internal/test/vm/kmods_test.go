package vm

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// kernelModules are the modules of the kernel's own package that the guest
// loads, in load order (softdog needs watchdog), with their directory
// under kernel/: softdog gives the watchdog boot its /dev/watchdog, fuse
// gives the suites /dev/fuse for internal/testutil/fusehang's real hangs. A
// builtIn module may be compiled into the kernel instead (fuse is, in
// bookworm-backports' 6.12, and the watchdog core in Debian's arm64
// kernels): absent from the package, it is not needed.
var kernelModules = []struct {
	dir, name string
	builtIn   bool
}{
	{"drivers/watchdog", "watchdog", true},
	{"drivers/watchdog", "softdog", false},
	{"fs/fuse", "fuse", true},
}

// extractModules extracts kernelModules from k's image package and returns
// them uncompressed, named so that /init's glob loads them in order and
// before faultmod.ko.
func extractModules(ctx context.Context, k *kernel, cache string) ([]string, error) {
	deb := k.image
	dir := filepath.Join(cache, "build", "kmods-"+k.version)
	var out []string
	for i, m := range kernelModules {
		dst := filepath.Join(dir, fmt.Sprintf("%d-%s.ko", i, m.name))
		if _, err := os.Stat(dst); err == nil {
			out = append(out, dst)
			continue
		}
		if m.builtIn {
			in, err := debHas(ctx, deb, fmt.Sprintf("/kernel/%s/%s.ko", m.dir, m.name))
			if err != nil {
				return nil, err
			}
			if !in {
				continue
			}
		}
		if err := extractModule(ctx, deb, k.version, m.dir, m.name, dst); err != nil {
			return nil, err
		}
		out = append(out, dst)
	}
	return out, nil
}

// debHas reports whether the package lists a file whose path contains
// part (a module, compressed or not).
func debHas(ctx context.Context, deb, part string) (bool, error) {
	out, err := exec.CommandContext(ctx, "dpkg-deb", "-c", deb).Output()
	if err != nil {
		return false, fmt.Errorf("listing %s: %w", filepath.Base(deb), err)
	}
	return strings.Contains(string(out), part), nil
}

// extractModule writes the module name of the .deb to dst, decompressed:
// Debian ships 6.1's modules as .ko, later ones as .ko.xz, and busybox's
// insmod takes neither .xz nor .zst.
func extractModule(ctx context.Context, deb, version, dir, name, dst string) error {
	tmp, err := os.MkdirTemp(filepath.Dir(filepath.Dir(dst)), "kmod-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	pattern := fmt.Sprintf("./lib/modules/%s/kernel/%s/%s.ko*", version, dir, name)
	sh := `dpkg-deb --fsys-tarfile "$1" | tar -x -C "$2" --wildcards "$3"`
	if out, err := exec.CommandContext(ctx, "sh", "-c", sh, "sh", deb, tmp, pattern).CombinedOutput(); err != nil {
		return fmt.Errorf("extracting %s from %s: %w: %s", pattern, filepath.Base(deb), err, out)
	}
	matches, _ := filepath.Glob(filepath.Join(tmp, strings.TrimPrefix(pattern, "./")))
	if len(matches) != 1 {
		return fmt.Errorf("%s: %d files match %s", filepath.Base(deb), len(matches), pattern)
	}
	src := matches[0]
	var decompress []string
	switch filepath.Ext(src) {
	case ".ko":
	case ".xz":
		decompress = []string{"xz", "-dc", src}
	case ".zst":
		decompress = []string{"zstd", "-dc", src}
	default:
		return fmt.Errorf("%s: unknown module compression", src)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	if decompress == nil {
		return os.Rename(src, dst)
	}
	f, err := os.Create(dst + ".tmp")
	if err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, decompress[0], decompress[1:]...)
	var stderr strings.Builder
	cmd.Stdout, cmd.Stderr = f, &stderr
	err = cmd.Run()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("decompressing %s: %w: %s", filepath.Base(src), err, stderr.String())
	}
	return os.Rename(dst+".tmp", dst)
}
