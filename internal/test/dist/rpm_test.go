package dist

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// debOnly and rpmOnly are the files one format alone has: Debian's
// changelog file and lintian overrides (an .rpm carries its changelog in
// its header), and zsh's completion directory of each family.
var (
	debOnly = []string{"/usr/share/doc/stallmon/changelog.Debian.gz", "/usr/share/lintian/overrides/stallmon", "/usr/share/zsh/vendor-completions/_stallmon"}
	rpmOnly = []string{"/usr/share/zsh/site-functions/_stallmon"}
)

// The .rpm holds the .deb's files; it installs into a scratch root with
// rpm --root, budgets.yaml as %config(noreplace), which an upgrade keeps
// edited; rpmlint finds nothing beyond what is accepted.
func testRPM(t *testing.T, b, newer built) {
	for arch, rpm := range b.rpm {
		got := lines(run(t, "", nil, "rpm", "-qlp", rpm))
		slices.Sort(got)
		want := append(slices.DeleteFunc(debFiles(t, b.deb[arch]), func(f string) bool { return slices.Contains(debOnly, f) }), rpmOnly...)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("%s lists other files than the .deb:\nrpm %v\ndeb %v", filepath.Base(rpm), got, want)
		}
		if c := lines(run(t, "", nil, "rpm", "-qp", "--configfiles", rpm)); !slices.Equal(c, []string{budgetsPath}) {
			t.Errorf("%s: config files %v, want [%s]", filepath.Base(rpm), c, budgetsPath)
		}
	}
	scratch := t.TempDir()
	run(t, "", nil, "rpm", "--root", scratch, "-i", "--nodeps", b.rpm["amd64"])
	bin := filepath.Join(scratch, "usr/bin/stallmon")
	if out, builtin := run(t, "", nil, bin, "budgets", "--config", filepath.Join(scratch, budgetsPath)), hostBuiltin(t, b.deb["amd64"]); rules([]byte(out)) != rules([]byte(builtin)) {
		t.Errorf("the .rpm's budgets.yaml does not give the built-in table:\n%s\nwant\n%s", out, builtin)
	}
	editTable(t, scratch)
	run(t, "", nil, "rpm", "--root", scratch, "-U", "--nodeps", newer.rpm["amd64"])
	if got, want := strings.TrimSpace(run(t, "", nil, "rpm", "--root", scratch, "-q", "--qf", "%{VERSION}-%{RELEASE}", "stallmon")), newer.version; got != want {
		t.Errorf("after rpm -U the root has stallmon %s, want %s", got, want)
	}
	b2, err := os.ReadFile(filepath.Join(scratch, budgetsPath))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(string(b2), edit) {
		t.Errorf("rpm -U to %s lost the edit of %s:\n%s", newer.version, budgetsPath, b2)
	}
	testRPMLint(t, b.rpm["amd64"])
}
