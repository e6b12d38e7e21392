package main

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
)

// buildBinary builds the static stallmon of one architecture into dir.
func buildBinary(src source, arch, dir string) (string, error) {
	bin := filepath.Join(dir, "stallmon")
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w -X main.version="+src.describe, "-o", bin, "./cmd/stallmon")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+arch, sourceDateEpoch(src))
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build for %s: %w\n%s", arch, err, out)
	}
	return bin, nil
}

// runBinary runs a built stallmon, under qemu's user-mode emulation when
// it is of another architecture than this machine's: what it prints
// depends on its architecture (the syscall names of its table).
func runBinary(bin, arch string, args ...string) ([]byte, error) {
	name := bin
	if arch != runtime.GOARCH {
		args = append([]string{bin}, args...)
		name = "qemu-" + qemuArch[arch] + "-static"
	}
	var stderr bytes.Buffer
	cmd := exec.Command(name, args...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("%s %v: %w: %s", name, args, err, stderr.Bytes())
	}
	return out, nil
}

var qemuArch = map[string]string{"amd64": "x86_64", "arm64": "aarch64"}

// budgetsHeader starts /etc/stallmon/budgets.yaml. It names no version:
// a conffile that changes at each upgrade makes dpkg ask about every
// edited one, and this one changes only with the table.
//
// The file extends the built-in table rather than copying it: a copy
// writes every inherited value out, so it would stop following the
// built-in table's fixes on upgrade and --kill-after/--budget would no
// longer reach the rules that inherit (docs/budgets.md). The built-in
// table is shown below it, commented out, for reference.
const budgetsHeader = `# stallmon's timeout table. The units pass it with --config; the format
# is in /usr/share/doc/stallmon and docs/budgets.md. Write below only what
# this node changes: a rule you name replaces the built-in one (give it
# its kill_after too), everything else follows the built-in table, also
# after upgrades. Drop-ins in /etc/stallmon/budgets.d/*.yaml apply after
# this file. 'stallmon budgets' prints the result. A package upgrade keeps
# this file as you edited it.
extends: builtin

`

// builtinMarker heads the commented copy of the built-in table.
const builtinMarker = "# The built-in table for %s, as 'stallmon budgets' prints it:\n"

// budgetsFile is the table file for arch: extends: builtin, with the
// built-in table its binary holds as comments.
func budgetsFile(bin, arch string) ([]byte, error) {
	table, err := runBinary(bin, arch, "budgets")
	if err != nil {
		return nil, fmt.Errorf("printing the built-in table for %s: %w", arch, err)
	}
	out := fmt.Appendf([]byte(budgetsHeader), builtinMarker, arch)
	for l := range strings.Lines(string(table)) {
		out = append(out, "#   "...)
		out = append(out, l...)
	}
	return out, nil
}

// manPages has cmd/stallmon's TestManPages write a page per command into dir.
func manPages(src source, dir string) error {
	cmd := exec.Command("go", "test", "-count=1", "-run", "^TestManPages$", "-ldflags", "-X main.version="+src.describe, "./cmd/stallmon")
	cmd.Env = append(os.Environ(), "STALLMON_MAN_DIR="+dir, sourceDateEpoch(src))
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("generating man pages: %w\n%s", err, out)
	}
	return nil
}

// gzipFile compresses path into path.gz the way Debian wants man pages:
// best compression, no name and no time stamp in the header.
func gzipFile(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if err != nil {
		return err
	}
	if _, err := zw.Write(b); err != nil {
		return fmt.Errorf("compressing %s: %w", path, err)
	}
	if err := zw.Close(); err != nil {
		return fmt.Errorf("compressing %s: %w", path, err)
	}
	if err := os.WriteFile(path+".gz", buf.Bytes(), 0o644); err != nil {
		return err
	}
	return os.Remove(path)
}

func sourceDateEpoch(src source) string {
	return "SOURCE_DATE_EPOCH=" + strconv.FormatInt(src.date.Unix(), 10)
}
