package budget

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stallmon/stallmon/internal/testutil/repo"

	"github.com/stallmon/stallmon/internal/fdkind"
)

// TestDocsExample keeps the example in docs/budgets.md valid and its
// comments about inheritance true.
func TestDocsExample(t *testing.T) {
	doc, err := os.ReadFile(repo.Path(t, "docs/budgets.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(doc), "```yaml\n")
	if !ok {
		t.Fatal("no yaml example in docs/budgets.md")
	}
	example, _, ok := strings.Cut(rest, "```")
	if !ok {
		t.Fatal("unterminated yaml example in docs/budgets.md")
	}
	tb := mustParse(t, example)
	s := time.Second
	cases := []struct {
		syscall string
		kind    fdkind.Kind
		want    Rule
	}{
		{"msync", fdkind.None, Rule{Budget: 10 * s, KillAfter: 60 * s}},
		{"close", fdkind.None, Rule{Budget: 5 * s}},
		{"read", fdkind.Regular, Rule{Budget: 5 * s, KillAfter: 60 * s}},
		{"read", fdkind.Socket, Rule{Unbounded: true}},
		{"write", fdkind.Device, Rule{Budget: 20 * s, KillAfter: 30 * s}},
		{"recvmsg", fdkind.Socket, Rule{Unbounded: true}},
		{"recvmsg", fdkind.Regular, Rule{Budget: 5 * s, KillAfter: 60 * s}},
	}
	for _, c := range cases {
		if got := tb.Lookup(c.syscall, c.kind); got != c.want {
			t.Errorf("docs example: Lookup(%s, %v) = %v, want %v", c.syscall, c.kind, got, c.want)
		}
	}

	states := []struct {
		syscall string
		kind    fdkind.Kind
		state   State
		want    Rule
	}{
		{"", fdkind.None, Uninterruptible, Rule{Budget: 10 * s, KillAfter: 60 * s}},
		{"epoll_wait", fdkind.None, Uninterruptible, Rule{Budget: 10 * s, KillAfter: 60 * s}},
		{"clone3", fdkind.None, Uninterruptible, Rule{Unbounded: true}},
		{"ioctl", fdkind.Other, Running, Rule{Unbounded: true}},
		{"ioctl", fdkind.TTY, Running, Rule{Budget: 5 * s, KillAfter: 60 * s}},
		{"fsync", fdkind.Regular, Uninterruptible, Rule{Budget: 10 * s, KillAfter: 120 * s}},
		{"write", fdkind.Socket, Uninterruptible, Rule{Budget: 10 * s, KillAfter: 60 * s}},
		{"", fdkind.None, Stopped, Rule{Unbounded: true}},
		{"", fdkind.None, Traced, Rule{Budget: 5 * s}},
		{"", fdkind.None, Exiting, Rule{Budget: 5 * s, KillAfter: 60 * s}},
	}
	for _, c := range states {
		if got := tb.StateRule(c.syscall, c.kind, c.state); got != c.want {
			t.Errorf("docs example: StateRule(%q, %v, %v) = %v, want %v", c.syscall, c.kind, c.state, got, c.want)
		}
	}
}
