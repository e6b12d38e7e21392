// Package ctarget builds, at test time, small C programs that put a thread
// in a state Go code cannot reach on its own: ia32 syscalls (-m32), vfork
// and posix_spawn parents waiting in D. The sources are embedded, so a
// test needs gcc (and gcc-multilib for -m32) but no build step.
package ctarget

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/stallmon/stallmon/internal/testutil/privtest"
)

// The sources live in csrc/: the go tool refuses .c files beside Go files
// in a package that does not use cgo.
//
//go:embed csrc/*.c
var sources embed.FS

// baseFlags: warnings are errors, so a program that only half builds
// fails the test rather than misbehaving in it.
var baseFlags = []string{"-O2", "-Wall", "-Wextra", "-Werror", "-pthread"}

// BuiltDirEnv names a directory that holds the programs already built,
// static, for a machine without gcc: the VMs of internal/test/vm, whose
// /init sets it. Build takes a program from there when no cflags are
// asked for.
const BuiltDirEnv = "STALLMON_CTARGET_DIR"

// Build compiles name.c with gcc and cflags into t.TempDir() and returns
// the binary's path. Without gcc, or without the 32-bit libraries when
// cflags hold -m32, it skips t (fails it when privtest.StrictEnv=1); a
// program that does not compile fails t.
func Build(t testing.TB, name string, cflags ...string) string {
	t.Helper()
	src, err := sources.ReadFile("csrc/" + name + ".c")
	if err != nil {
		t.Fatalf("ctarget: no program %q: %v", name, err)
	}
	if dir := os.Getenv(BuiltDirEnv); dir != "" && len(cflags) == 0 {
		built := filepath.Join(dir, name)
		if _, err := os.Stat(built); err != nil {
			t.Fatalf("ctarget: %s=%s has no %s: %v", BuiltDirEnv, dir, name, err)
		}
		return built
	}
	gcc := privtest.RequireCommand(t, "gcc")
	if gcc == "" {
		return "" // a fake testing.TB's Skipf returned
	}
	dir := t.TempDir()
	if slices.Contains(cflags, "-m32") {
		// Probe with an empty program first, so that missing multilib
		// support is told from a bug in the program.
		if out, err := compile(gcc, dir, "probe", []byte("int main(void) { return 0; }\n"), cflags); err != nil {
			unavailable(t, fmt.Sprintf("gcc cannot build %v programs (apt-get install gcc-multilib): %v\n%s", cflags, err, out))
			return ""
		}
	}
	out, err := compile(gcc, dir, name, src, cflags)
	if err != nil {
		t.Fatalf("ctarget: building %s.c with %v: %v\n%s", name, cflags, err, out)
	}
	return filepath.Join(dir, name)
}

func compile(gcc, dir, name string, src []byte, cflags []string) ([]byte, error) {
	c := filepath.Join(dir, name+".c")
	if err := os.WriteFile(c, src, 0o600); err != nil {
		return nil, err
	}
	args := append(slices.Clone(baseFlags), cflags...)
	args = append(args, "-o", filepath.Join(dir, name), c)
	return exec.Command(gcc, args...).CombinedOutput()
}

// unavailable skips t, or fails it when privtest.StrictEnv=1, as privtest
// does for a missing privilege; it must be the last call on its path.
func unavailable(t testing.TB, reason string) {
	t.Helper()
	if os.Getenv(privtest.StrictEnv) == "1" {
		t.Fatalf("%s, and %s=1 forbids skipping", reason, privtest.StrictEnv)
		return
	}
	t.Skipf("%s (set %s=1 to fail instead)", reason, privtest.StrictEnv)
}

// RequireIA32 skips t unless the kernel runs 32-bit x86 programs. bin is
// one, built with -m32, that ends on its own with stdin at EOF (ia32wait
// does); only its exec matters. Kernels may lack IA32_EMULATION or have it
// turned off at boot (ia32_emulation=off, the default with
// IA32_EMULATION_DEFAULT_DISABLED, or forced off under some hypervisors):
// exec fails with ENOEXEC then. That is the kernel's configuration, not a
// missing privilege, so the skip stands in strict mode too: the CI host's
// kernel is such a kernel, and make vmtest runs the 32-bit tests on
// Debian's kernels, which run ia32 programs (internal/test/vm/guest/ia32_test.go).
func RequireIA32(t testing.TB, bin string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := exec.CommandContext(ctx, bin).Run()
	if errors.Is(err, syscall.ENOEXEC) {
		t.Skipf("the kernel does not run 32-bit programs (see ia32_emulation in dmesg): %v; make vmtest covers them", err)
		return
	}
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("ctarget: running %s: %v", bin, err)
	}
}
