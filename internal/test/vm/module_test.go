package vm

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
)

// faultmodSources are the files kbuild needs, copied out of the Go
// package directory (see faultmod/Makefile for why).
var faultmodSources = []string{"Kbuild", "faultmod.c", "faultmod.h"}

// buildFaultmod builds faultmod.ko for k against Debian's headers for
// that exact kernel, with the compiler the headers were made with.
// hostCrossCC is bookworm's cross compiler, for headers whose own is not
// in bookworm.
const hostCrossCC = "gcc-12"

func buildFaultmod(ctx context.Context, k *kernel, cache string) (string, error) {
	headers, err := k.extractHeaders(ctx, cache)
	if err != nil {
		return "", err
	}
	cc, err := headersCompiler(headers)
	if err != nil {
		return "", err
	}
	kbuildArgs, env := []string{"CC=" + cc}, os.Environ()
	if cross := k.source.guestArch().cross; cross != "" {
		tc, err := crossToolchain(ctx, cc, cross, cache)
		if err != nil {
			// 5.10's gcc-10 has no cross compiler in bookworm: its
			// own gcc-12 builds a module that loads all the same.
			if tc, err = crossToolchain(ctx, hostCrossCC, cross, cache); err != nil {
				return "", err
			}
			cc = hostCrossCC
		}
		kbuildArgs = []string{"CC=" + cross + "-" + cc, "CROSS_COMPILE=" + cross + "-"}
		env = tc.env(env)
	} else if err := ensureInstalled(ctx, map[string]string{cc: cc}); err != nil {
		// Linux 5.10's gcc-10 is not in bookworm: the host's own gcc
		// builds a module that loads all the same (kbuild checks no
		// compiler version; insmod checks the vermagic, which names
		// none).
		if _, lerr := exec.LookPath("gcc"); lerr != nil {
			return "", fmt.Errorf("installing %s, the compiler of %s's headers: %w", cc, k.version, err)
		}
		cc = "gcc"
		kbuildArgs = []string{"CC=" + cc}
	}

	dir := filepath.Join(cache, "build", "faultmod-"+k.version)
	if err := os.RemoveAll(dir); err != nil {
		return "", fmt.Errorf("cleaning %s: %w", dir, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("creating %s: %w", dir, err)
	}
	for _, f := range faultmodSources {
		b, err := os.ReadFile(filepath.Join("faultmod", f))
		if err != nil {
			return "", fmt.Errorf("reading module source: %w", err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			return "", fmt.Errorf("copying module source: %w", err)
		}
	}
	// No BTF for the module: the tests have no use for it, and making it
	// needs pahole and, from 6.12 on, fails without it.
	args := append([]string{"-C", headers, "M=" + dir, "CONFIG_DEBUG_INFO_BTF_MODULES=", "modules"}, kbuildArgs...)
	cmd := exec.CommandContext(ctx, "make", args...)
	cmd.Env = env
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building faultmod.ko for %s: %w\n%s", k.version, err, out)
	}
	return filepath.Join(dir, "faultmod.ko"), nil
}

// extractHeaders downloads linux-headers-VERSION and the headers and kbuild
// packages it depends on, unpacks them under k.root, and points the
// headers Makefile, which includes the common part by its installed
// absolute path, at the extracted copy (on every run, so that a moved
// cache still builds).
func (k *kernel) extractHeaders(ctx context.Context, cache string) (string, error) {
	pkg := "linux-headers-" + k.version
	deps, err := k.repo.resolveDepends(ctx, pkg)
	if err != nil {
		return "", fmt.Errorf("resolving %s: %w", pkg, err)
	}
	// kbuild's programs (fixdep, modpost) run on the host: for another
	// architecture's kernel they come from the host's architecture, in
	// the same version from the same suite.
	kbuildRepo := k.repo
	if a := k.source.guestArch(); a != amd64 {
		if kbuildRepo, err = archRepo(ctx, k.source.name+" kbuild", k.source.suite, k.source.via, amd64, cache); err != nil {
			return "", err
		}
		if err := kbuildRepo.ensureLists(ctx); err != nil {
			return "", err
		}
	}
	type debOf struct {
		pkg  string
		repo *aptRepo
	}
	debs := []debOf{{pkg, k.repo}}
	for _, d := range deps {
		switch {
		case strings.HasPrefix(d, "linux-headers-"):
			debs = append(debs, debOf{d, k.repo})
		case strings.HasPrefix(d, "linux-kbuild-"):
			debs = append(debs, debOf{d, kbuildRepo})
		}
	}
	for _, d := range debs {
		deb, err := d.repo.download(ctx, d.pkg, filepath.Join(cache, "debs"))
		if err != nil {
			return "", err
		}
		if err := extractDeb(ctx, deb, k.root); err != nil {
			return "", err
		}
	}
	dir := filepath.Join(k.root, "usr", "src", pkg)
	mk := filepath.Join(dir, "Makefile")
	b, err := os.ReadFile(mk)
	if err != nil {
		return "", fmt.Errorf("reading headers Makefile: %w", err)
	}
	fixed := absIncludeRE.ReplaceAll(b, []byte("${1}"+k.root+"/usr/src/"))
	if !bytes.Equal(fixed, b) {
		if err := os.WriteFile(mk, fixed, 0o644); err != nil {
			return "", fmt.Errorf("rewriting headers Makefile: %w", err)
		}
	}
	return dir, nil
}

var absIncludeRE = regexp.MustCompile(`(?m)^(include\s+)\S*/usr/src/`)

// headersCompiler names the compiler the kernel was built with, from the
// headers' .config ("gcc-12 (Debian 12.2.0-14) 12.2.0" gives gcc-12):
// Debian's kbuild calls it by that name.
func headersCompiler(headers string) (string, error) {
	b, err := os.ReadFile(filepath.Join(headers, ".config"))
	if err != nil {
		return "", fmt.Errorf("reading kernel config: %w", err)
	}
	return parseCompiler(b)
}

var ccVersionRE = regexp.MustCompile(`(?m)^CONFIG_CC_VERSION_TEXT="([^" ]+)`)

func parseCompiler(config []byte) (string, error) {
	m := ccVersionRE.FindSubmatch(config)
	if m == nil {
		return "", fmt.Errorf("no CONFIG_CC_VERSION_TEXT in kernel config")
	}
	return string(m[1]), nil
}
