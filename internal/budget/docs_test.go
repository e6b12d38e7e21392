package budget

import (
	"os"
	"regexp"
	"strconv"
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

// TestDocsBuiltinFigures keeps the figures of docs/budgets.md's summary of
// the built-in table true: each bullet whose bold head gives "B / K" names
// its syscalls before the colon in the head ("**fsync, fdatasync: 30s /
// 120s.**") or in backquotes in the sentence after it ("**Memory
// syscalls, 60s / 120s:** `mmap`, `munmap`."), and each must have that
// rule. A budget changed in default.yaml and not in the docs fails here.
func TestDocsBuiltinFigures(t *testing.T) {
	doc, err := os.ReadFile(repo.Path(t, "docs/budgets.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(doc), "\n## The built-in table\n")
	if !ok {
		t.Fatal("no built-in table section in docs/budgets.md")
	}
	section, _, _ = strings.Cut(section, "\n## ")
	tb, err := Default(nil)
	if err != nil {
		t.Fatal(err)
	}
	figures := regexp.MustCompile(`(\d+)s / (\d+)s`)
	checked := 0
	for _, bullet := range strings.Split(section, "\n- **")[1:] {
		head, rest, ok := strings.Cut(bullet, "**")
		m := figures.FindStringSubmatch(head)
		if !ok || m == nil {
			continue
		}
		b, _ := strconv.Atoi(m[1])
		k, _ := strconv.Atoi(m[2])
		want := Rule{Budget: time.Duration(b) * time.Second, KillAfter: time.Duration(k) * time.Second}
		var names []string
		if before, _, ok := strings.Cut(head, ":"); ok && !strings.Contains(before, " / ") {
			for _, n := range strings.Split(before, ",") {
				names = append(names, strings.TrimSpace(n))
			}
		} else if strings.HasPrefix(head, "default ") {
			names = []string{"openat"} // not listed: the default rule
		} else {
			sentence, _, _ := strings.Cut(rest, ". ")
			for _, q := range regexp.MustCompile("`([a-z0-9_]+)`").FindAllStringSubmatch(sentence, -1) {
				names = append(names, q[1])
			}
		}
		if len(names) == 0 {
			t.Errorf("bullet %q gives %s / %s for no syscall this test can find", head, m[1], m[2])
		}
		for _, n := range names {
			if got := tb.Lookup(n, fdkind.None); got != want {
				t.Errorf("docs/budgets.md gives %s %v, the built-in table %v", n, want, got)
			}
			checked++
		}
	}
	if checked < 20 {
		t.Errorf("checked %d syscalls against the docs' figures, want the default, the flushes and the memory syscalls", checked)
	}
}

// TestDocsExtendsExample keeps the main table and drop-in of docs/budgets.md's
// "Extending the built-in table" valid and its claims true.
func TestDocsExtendsExample(t *testing.T) {
	doc, err := os.ReadFile(repo.Path(t, "docs/budgets.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(doc), "\n### Extending the built-in table\n")
	if !ok {
		t.Fatal("no extending section in docs/budgets.md")
	}
	parts := strings.Split(section, "```yaml\n")
	if len(parts) < 3 {
		t.Fatalf("want a main table and a drop-in, got %d examples", len(parts)-1)
	}
	var blocks []string
	for _, part := range parts[1:3] {
		block, _, _ := strings.Cut(part, "```")
		blocks = append(blocks, block)
	}
	path := tableDir(t, blocks[0], map[string]string{"10-fuse.yaml": blocks[1]})
	tb, err := Load(path, knownIn(amd64Names(t)))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []lookup{
		{"fsync", fdkind.None, Rule{Budget: 60 * s, KillAfter: 300 * s}},
		{"close", fdkind.Socket, Rule{Budget: 5 * s, KillAfter: 60 * s}},
		{"read", fdkind.Device, Rule{Unbounded: true}},
		{"read", fdkind.Socket, Rule{Unbounded: true}},
		{"read", fdkind.Regular, Rule{Budget: 5 * s, KillAfter: 60 * s}},
	} {
		if got := tb.Lookup(c.syscall, c.kind); got != c.want {
			t.Errorf("docs example: Lookup(%s, %v) = %v, want %v", c.syscall, c.kind, got, c.want)
		}
	}
}
