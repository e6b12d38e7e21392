package dist

import (
	"os/exec"
	"strings"
	"testing"
)

// lintian finds no error and no warning in the .debs: the few tags that
// are intended are overridden in the package, each with its reason
// (deploy/package/lintian-overrides).
func testLintian(t *testing.T, debs ...string) {
	out, err := exec.Command("lintian", append([]string{"--display-level", ">=info"}, debs...)...).Output()
	for _, l := range lines(string(out)) {
		if strings.HasPrefix(l, "E:") || strings.HasPrefix(l, "W:") {
			t.Errorf("lintian: %s", l)
		} else {
			t.Logf("lintian: %s", l)
		}
	}
	if err != nil && !t.Failed() {
		t.Errorf("lintian: %v\n%s", err, out)
	}
}

// rpmlintAccepted are the tags rpmlint (Debian's, with its default
// configuration) gives the .rpm on purpose; docs/install.md says why.
var rpmlintAccepted = map[string]bool{
	"statically-linked-binary":                  true, // one static Go binary for every distribution
	"no-signature":                              true, // signing is the distributor's, with its own key
	"position-independent-executable-suggested": true, // a static non-PIE Go binary
	"only-non-binary-in-usr-lib":                true, // the systemd units in /usr/lib/systemd/system
	"no-manual-page-for-binary":                 true, // stallmon(8): rpmlint looks in man1 for /usr/bin
	"manpage-not-compressed":                    true, // gzip, as Debian and Fedora ship them; rpmlint's default wants bz2
	"invalid-license":                           true, // the project has not chosen a licence yet
}

// rpmlint reports nothing beyond the accepted tags.
func testRPMLint(t *testing.T, rpm string) {
	out, _ := exec.Command("rpmlint", rpm).CombinedOutput()
	checked := false
	for _, l := range lines(string(out)) {
		if strings.Contains(l, "packages and 0 specfiles checked") {
			checked = true
		}
		_, rest, ok := strings.Cut(l, ": E: ")
		if !ok {
			_, rest, ok = strings.Cut(l, ": W: ")
		}
		if !ok {
			continue
		}
		tag := strings.Fields(rest)[0]
		if rpmlintAccepted[tag] {
			t.Logf("rpmlint (accepted): %s", l)
		} else {
			t.Errorf("rpmlint: %s", l)
		}
	}
	if !checked {
		t.Errorf("rpmlint checked nothing:\n%s", out)
	}
}
