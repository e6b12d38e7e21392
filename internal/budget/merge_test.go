package budget

// A file that changes one fd kind's rule or a syscall's own rule keeps the
// kind's and the syscall's other rules: replacing an entry whole would
// bound what the built-in table leaves unbounded.

import (
	"testing"

	"github.com/stallmon/stallmon/internal/fdkind"
)

func TestMergeKeepsKindAndStateRules(t *testing.T) {
	path := tableDir(t, "extends: builtin\n", map[string]string{
		// A state override for ioctl on "other" fds: its unbounded
		// elapsed rule and running: unbounded must stay.
		"10-a.yaml": "syscalls:\n  ioctl: {by_fd: {other: {uninterruptible: {budget: 30s, kill_after: 120s}}}}\n" +
			// A budget for clone3: its built-in state overrides must stay.
			"  clone3: {budget: 10s, kill_after: 60s}\n",
	})
	tb, err := Load(path, knownIn(amd64Names(t)))
	if err != nil {
		t.Fatal(err)
	}
	free := Rule{Unbounded: true}
	for _, c := range []struct {
		what      string
		got, want Rule
	}{
		{"ioctl on other", tb.Lookup("ioctl", fdkind.Other), free},
		{"ioctl on other, running", tb.StateRule("ioctl", fdkind.Other, Running), free},
		{"ioctl on other, in D", tb.StateRule("ioctl", fdkind.Other, Uninterruptible), Rule{Budget: 30 * s, KillAfter: 120 * s}},
		{"clone3 in D", tb.StateRule("clone3", fdkind.None, Uninterruptible), free},
		{"clone3 running", tb.StateRule("clone3", fdkind.None, Running), Rule{Budget: 30 * s, KillAfter: 120 * s}},
	} {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.what, c.got, c.want)
		}
	}
}
