package dist

import (
	"bytes"
	"debug/elf"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// The arm64 .deb holds the files of the amd64 one; its binary is a static
// aarch64 executable that accepts the table packaged beside it, which is
// the one it holds built in.
func testArm64(t *testing.T, b built) {
	if b.deb["arm64"] == "" {
		t.Fatal("no arm64 .deb")
	}
	amd, arm := debFiles(t, b.deb["amd64"]), debFiles(t, b.deb["arm64"])
	if !slices.Equal(amd, arm) {
		t.Errorf("the arm64 .deb holds other files than the amd64 one:\narm64 %v\namd64 %v", arm, amd)
	}
	for arch, machine := range map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64} {
		f, err := elf.NewFile(bytes.NewReader(debFile(t, b.deb[arch], "usr/bin/stallmon")))
		if err != nil {
			t.Fatalf("%s /usr/bin/stallmon: %v", arch, err)
		}
		if f.Machine != machine {
			t.Errorf("%s /usr/bin/stallmon is for %v, want %v", arch, f.Machine, machine)
		}
		for _, p := range f.Progs {
			if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
				t.Errorf("%s /usr/bin/stallmon is not static: it has %v", arch, p.Type)
			}
		}
	}
	dir := t.TempDir()
	bin, table := filepath.Join(dir, "stallmon"), filepath.Join(dir, "budgets.yaml")
	if err := os.WriteFile(bin, debFile(t, b.deb["arm64"], "usr/bin/stallmon"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(table, debFile(t, b.deb["arm64"], "etc/stallmon/budgets.yaml"), 0o644); err != nil {
		t.Fatal(err)
	}
	builtin := run(t, "", nil, "qemu-aarch64-static", bin, "budgets")
	if got := run(t, "", nil, "qemu-aarch64-static", bin, "budgets", "--config", table); rules([]byte(got)) != rules([]byte(builtin)) {
		t.Errorf("the arm64 package's budgets.yaml does not give the arm64 binary's built-in table:\n%s\nwant\n%s", got, builtin)
	}
	if shown := shownTable(debFile(t, b.deb["arm64"], "etc/stallmon/budgets.yaml")); shown != builtin {
		t.Errorf("the arm64 package's budgets.yaml shows another table than the arm64 binary's built-in one:\n%s\nwant\n%s", shown, builtin)
	}
	// Each binary judges the names of its own ABIs (arm64 also aarch32's
	// poll, epoll_wait, ...): today both keep every name of the built-in
	// table, so the rules are the same and only the header differs.
	if shownTable(debFile(t, b.deb["amd64"], "etc/stallmon/budgets.yaml")) != shownTable(debFile(t, b.deb["arm64"], "etc/stallmon/budgets.yaml")) {
		t.Logf("the arm64 and amd64 tables hold different rules (syscall names of each architecture)")
	} else {
		t.Logf("the arm64 and amd64 tables hold the same rules")
	}
}

// rules is a table without its comments, whole-line or trailing (the
// origins stallmon budgets writes).
func rules(table []byte) string {
	var b strings.Builder
	for l := range strings.Lines(string(table)) {
		if strings.HasPrefix(l, "#") {
			continue
		}
		if i := strings.Index(l, "  # from "); i >= 0 {
			l = l[:i] + "\n"
		}
		b.WriteString(l)
	}
	return b.String()
}

// shownTable is the built-in table a shipped budgets.yaml shows in its
// comments, uncommented.
func shownTable(file []byte) string {
	var b strings.Builder
	on := false
	for l := range strings.Lines(string(file)) {
		switch {
		case strings.HasPrefix(l, "# The built-in table for "):
			on = true
		case on:
			b.WriteString(strings.TrimPrefix(l, "#   "))
		}
	}
	return b.String()
}

// debFiles lists the regular files and links a .deb installs, sorted.
func debFiles(t *testing.T, deb string) []string {
	t.Helper()
	var files []string
	for _, l := range lines(run(t, "", nil, "dpkg-deb", "--contents", deb)) {
		f := strings.Fields(l)
		if len(f) < 6 || strings.HasPrefix(f[0], "d") {
			continue
		}
		files = append(files, strings.TrimPrefix(f[5], "."))
	}
	slices.Sort(files)
	return files
}

// debFile is the content of one file of a .deb.
func debFile(t *testing.T, deb, path string) []byte {
	t.Helper()
	out := run(t, "", nil, "sh", "-c", `dpkg-deb --fsys-tarfile "$0" | tar -x -O -f - "./$1"`, deb, path)
	if out == "" {
		t.Fatalf("%s: %s is empty or missing", filepath.Base(deb), path)
	}
	return []byte(out)
}
