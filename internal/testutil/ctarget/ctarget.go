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
	"strings"
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

// PrebuiltEnv names a directory of programs built ahead by Prebuild, for
// a machine without gcc: the VMs of internal/test/vm set it.
const PrebuiltEnv = "STALLMON_CTARGETS"

// Program is one build of a C target: what Build is asked for.
type Program struct {
	Name   string
	CFlags []string
}

// FileName is the program's file in a PrebuiltEnv directory.
func (p Program) FileName() string {
	return strings.Join(append([]string{p.Name}, p.CFlags...), "")
}

// InVMs are the programs the tests that make vmtest runs in its guests
// build (internal/tracker's 32-bit tests, internal/test/vm/guest's 32-bit
// oops): the guests have no gcc, so the harness builds these on the host
// with Prebuild.
var InVMs = []Program{
	{"ioctlcall", []string{"-m32", "-static"}},
	{"threadexit", []string{"-m32", "-static"}},
	{"threadexit", []string{"-mx32", "-static"}},
	{"hookrun", []string{"-m32", "-static"}},
	{"hookrun", []string{"-mx32", "-static"}},
	{"ia32wait", []string{"-m32", "-static"}},
	{"ia32wait", []string{"-mx32", "-static"}},
	{"enosysloop", []string{"-static"}},
	{"enosysloop", []string{"-m32", "-static"}},
	{"seccompwait", []string{"-static"}},
	{"seccompwait", []string{"-m32", "-static"}},
	{"spawnwait", nil},
	{"churn", nil},
	{"exitflush", nil},
}

// Prebuild compiles p into dir under p.FileName(), for Build to find
// through PrebuiltEnv.
func Prebuild(dir string, p Program) (string, error) {
	src, err := sources.ReadFile("csrc/" + p.Name + ".c")
	if err != nil {
		return "", fmt.Errorf("ctarget: no program %q: %w", p.Name, err)
	}
	gcc, err := exec.LookPath("gcc")
	if err != nil {
		return "", fmt.Errorf("ctarget: %w (make deps-test installs gcc and gcc-multilib)", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	tmp, err := os.MkdirTemp(dir, "build")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	// The guests have no C library: every program built ahead is static,
	// whether or not its test asked for it.
	flags := p.CFlags
	if !slices.Contains(flags, "-static") {
		flags = append(slices.Clone(flags), "-static")
	}
	if out, err := compile(gcc, tmp, p.Name, src, flags); err != nil {
		return "", fmt.Errorf("ctarget: building %s.c with %v: %w\n%s", p.Name, p.CFlags, err, out)
	}
	path := filepath.Join(dir, p.FileName())
	return path, os.Rename(filepath.Join(tmp, p.Name), path)
}

// Build compiles name.c with gcc and cflags into t.TempDir() and returns
// the binary's path. Without gcc, or without the 32-bit libraries when
// cflags hold -m32 or -mx32, it skips t (fails it when privtest.StrictEnv=1); a
// program that does not compile fails t. Where PrebuiltEnv is set, it
// returns the program built ahead there instead, and fails t if it is not.
func Build(t testing.TB, name string, cflags ...string) string {
	t.Helper()
	if dir := os.Getenv(PrebuiltEnv); dir != "" {
		path := filepath.Join(dir, Program{name, cflags}.FileName())
		if _, err := os.Stat(path); err != nil {
			t.Fatalf("ctarget: %s was not built ahead (add it to ctarget.InVMs): %v", path, err)
		}
		return path
	}
	src, err := sources.ReadFile("csrc/" + name + ".c")
	if err != nil {
		t.Fatalf("ctarget: no program %q: %v", name, err)
	}
	gcc := privtest.RequireCommand(t, "gcc")
	if gcc == "" {
		return "" // a fake testing.TB's Skipf returned
	}
	dir := t.TempDir()
	if slices.Contains(cflags, "-m32") || slices.Contains(cflags, "-mx32") {
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

// RequireX32 skips t unless the kernel runs x32 programs: built with
// CONFIG_X86_X32_ABI and, on Debian's kernels, booted with syscall.x32=y
// (make vmtest's guests are; this host's kernel has no x32). bin is an x32
// program that exits 0 on its own with stdin at EOF (threadexit does):
// where exec works but x32 syscalls are refused, it cannot. As for
// RequireIA32, that is the kernel's configuration, and the skip stands in
// strict mode; internal/test/vm/guest's x32 test fails if a guest cannot.
func RequireX32(t testing.TB, bin string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, bin).CombinedOutput(); err != nil {
		t.Skipf("the kernel does not run x32 programs (CONFIG_X86_X32_ABI, syscall.x32=y): %s: %v %s", bin, err, out)
	}
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
