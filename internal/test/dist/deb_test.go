package dist

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const (
	budgetsPath = "/etc/stallmon/budgets.yaml"
	// edit is what an operator adds to the shipped table (extends:
	// builtin); editedRule is how stallmon budgets prints it.
	edit       = "syscalls:\n  fsync: {budget: 45s, kill_after: 3m}\n"
	editedRule = "  fsync: {budget: 45s, kill_after: 3m}"
)

// The .deb installs with apt into a fresh root and runs there; its
// budgets.yaml is the built-in table and what --config reads; its units
// pass systemd-analyze verify in that root; an upgrade keeps an edited
// budgets.yaml, so does a removal, and a purge removes it.
func testDeb(t *testing.T, tarball, deb string, newer built, describe string) {
	dir := freshRoot(t, tarball)
	aptInstall(t, dir, deb)
	if got, want := strings.TrimSpace(inRoot(t, dir, "stallmon", "version")), "stallmon "+describe; got != want {
		t.Errorf("stallmon version in the root: %q, want %q", got, want)
	}
	if c := inRoot(t, dir, "dpkg-query", "-W", "-f", "${Conffiles}", "stallmon"); !strings.Contains(c, budgetsPath+" ") {
		t.Errorf("%s is no conffile of the .deb; its conffiles: %q", budgetsPath, c)
	}
	builtin := hostBuiltin(t, deb)
	if got := inRoot(t, dir, "stallmon", "budgets", "--config", budgetsPath); rules([]byte(got)) != rules([]byte(builtin)) {
		t.Errorf("the shipped %s does not give the built-in table:\n%s\nwant\n%s", budgetsPath, got, builtin)
	}
	editTable(t, dir)
	if got := inRoot(t, dir, "stallmon", "budgets", "--config", budgetsPath); !strings.Contains(got, editedRule) {
		t.Errorf("stallmon budgets --config %s does not print the edited rule %q:\n%s", budgetsPath, editedRule, got)
	}
	if got := inRoot(t, dir, "stallmon", "budgets"); !strings.Contains(got, editedRule+"  # from "+budgetsPath) {
		t.Errorf("stallmon budgets does not read %s by default:\n%s", budgetsPath, got)
	}
	verifyUnits(t, dir)

	aptInstall(t, dir, newer.deb["amd64"])
	if got := inRoot(t, dir, "dpkg-query", "-W", "-f", "${Version}", "stallmon"); got != newer.version {
		t.Errorf("after the upgrade dpkg has stallmon %s, want %s", got, newer.version)
	}
	b, err := os.ReadFile(filepath.Join(dir, budgetsPath))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(string(b), edit) {
		t.Errorf("the upgrade to %s lost the edit of %s:\n%s", newer.version, budgetsPath, b)
	}
	if got := inRoot(t, dir, "stallmon", "budgets", "--config", budgetsPath); !strings.Contains(got, editedRule) {
		t.Errorf("after the upgrade stallmon budgets does not print the edited rule:\n%s", got)
	}

	inRoot(t, dir, "apt-get", "remove", "-y", "stallmon")
	if _, err := os.Stat(filepath.Join(dir, budgetsPath)); err != nil {
		t.Errorf("apt remove did not keep %s: %v", budgetsPath, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "usr/bin/stallmon")); err == nil {
		t.Errorf("apt remove left /usr/bin/stallmon")
	}
	inRoot(t, dir, "apt-get", "purge", "-y", "stallmon")
	if _, err := os.Stat(filepath.Join(dir, budgetsPath)); err == nil {
		t.Errorf("apt purge left %s", budgetsPath)
	}
}

// editTable adds a rule to the root's budgets.yaml, as an operator would.
func editTable(t *testing.T, dir string) {
	t.Helper()
	path := filepath.Join(dir, budgetsPath)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "\nextends: builtin\n") {
		t.Fatalf("%s does not extend the built-in table:\n%s", budgetsPath, b)
	}
	if err := os.WriteFile(path, append(b, edit...), 0o644); err != nil {
		t.Fatal(err)
	}
}

// hostBuiltin is the built-in table of the .deb's binary, run here, where
// no /etc/stallmon exists.
func hostBuiltin(t *testing.T, deb string) string {
	t.Helper()
	if _, err := os.Stat("/etc/stallmon/budgets.yaml"); err == nil {
		t.Fatal("this host has /etc/stallmon/budgets.yaml: the built-in table cannot be printed here")
	}
	bin := filepath.Join(t.TempDir(), "stallmon")
	if err := os.WriteFile(bin, debFile(t, deb, "usr/bin/stallmon"), 0o755); err != nil {
		t.Fatal(err)
	}
	return run(t, "", nil, bin, "budgets")
}

// verifyUnits runs systemd-analyze verify on the installed units in the
// root (its systemd's targets, its /usr/bin/stallmon), the templates for
// an operator's service that carries the example drop-in. Any line it
// prints is a mistake.
func verifyUnits(t *testing.T, dir string) {
	t.Helper()
	sys := filepath.Join(dir, "etc", "systemd", "system")
	if err := os.MkdirAll(filepath.Join(sys, "myservice.service.d"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(sys, "myservice.service"), []byte("[Unit]\nDescription=a service stallmon watches\n\n[Service]\nExecStart=/bin/sleep infinity\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	dropIn, err := os.ReadFile(filepath.Join(dir, "usr/share/doc/stallmon/examples/watched-service.conf"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(sys, "myservice.service.d", "stallmon.conf"), dropIn, 0o644); err != nil {
		t.Fatal(err)
	}
	units := []string{"stallmon-listen.service", "stallmon-attach@myservice.service", "stallmon-notify@myservice.service", "myservice.service"}
	out := run(t, "", nil, "sh", append([]string{"-c", `systemd-analyze verify --man=no --root="$0" "$@" 2>&1`, dir}, units...)...)
	if l := lines(out); len(l) > 0 {
		t.Errorf("systemd-analyze verify %v in the root:\n%s", units, strings.Join(l, "\n"))
	}
}
