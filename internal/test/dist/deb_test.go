package dist

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const (
	budgetsPath = "/etc/stallmon/budgets.yaml"
	// shippedRule is a line of the built-in table; editedRule replaces it.
	shippedRule = "  fsync: {budget: 30s, kill_after: 2m}\n"
	editedRule  = "  fsync: {budget: 45s, kill_after: 2m}\n"
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
	builtin := inRoot(t, dir, "stallmon", "budgets")
	if got := inRoot(t, dir, "stallmon", "budgets", "--config", budgetsPath); got != builtin {
		t.Errorf("the shipped %s is not the built-in table:\n%s\nwant\n%s", budgetsPath, got, builtin)
	}
	editTable(t, dir)
	if got := inRoot(t, dir, "stallmon", "budgets", "--config", budgetsPath); !strings.Contains(got, editedRule) {
		t.Errorf("stallmon budgets --config %s does not print the edited rule %q:\n%s", budgetsPath, editedRule, got)
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
	if !strings.Contains(string(b), editedRule) {
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

// editTable changes one rule of the root's budgets.yaml, as an operator would.
func editTable(t *testing.T, dir string) {
	t.Helper()
	path := filepath.Join(dir, budgetsPath)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), shippedRule) {
		t.Fatalf("%s lacks the rule %q to edit:\n%s", budgetsPath, shippedRule, b)
	}
	if err := os.WriteFile(path, []byte(strings.Replace(string(b), shippedRule, editedRule, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
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
