package budget

import (
	"bufio"
	"bytes"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/stallmon/stallmon/internal/fdkind"
)

// amd64Names loads the amd64 syscall names the caller would supply.
func amd64Names(t testing.TB) map[string]bool {
	t.Helper()
	f, err := os.Open("testdata/syscalls_amd64.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	names := map[string]bool{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		names[line] = true
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(names) < 300 {
		t.Fatalf("only %d amd64 syscall names loaded", len(names))
	}
	return names
}

func knownIn(names map[string]bool) func(string) bool {
	return func(n string) bool { return names[n] }
}

func mustParse(t testing.TB, src string) *Table {
	t.Helper()
	tb, err := Parse([]byte(src), nil)
	if err != nil {
		t.Fatalf("Parse:\n%s\nerror: %v", src, err)
	}
	return tb
}

func configError(t testing.TB, err error) *ConfigError {
	t.Helper()
	var ce *ConfigError
	if !errors.As(err, &ce) {
		t.Fatalf("error %v (%T) is not a *ConfigError", err, err)
	}
	return ce
}

func format(t testing.TB, tb *Table) string {
	t.Helper()
	var b bytes.Buffer
	if err := tb.Format(&b); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// sameBehaviour reports the first difference between two tables as seen
// through the exported API, or "" when they answer every question alike.
func sameBehaviour(a, b *Table) string {
	if a.DefaultRule() != b.DefaultRule() {
		return "default " + a.DefaultRule().String() + " vs " + b.DefaultRule().String()
	}
	for _, s := range States() {
		if ar, br := a.ProcessRule(s), b.ProcessRule(s); ar != br {
			return "state " + s.String() + ": " + ar.String() + " vs " + br.String()
		}
	}
	am, aKills := a.MaxKillAfter()
	bm, bKills := b.MaxKillAfter()
	if am != bm || aKills != bKills {
		return "MaxKillAfter differs"
	}
	an, bn := a.Names(), b.Names()
	if strings.Join(an, ",") != strings.Join(bn, ",") {
		return "names " + strings.Join(an, ",") + " vs " + strings.Join(bn, ",")
	}
	// An unlisted name must fall back alike too.
	for _, n := range append(an, "not_listed") {
		if a.NeedsFDKind(n) != b.NeedsFDKind(n) {
			return n + ": NeedsFDKind differs"
		}
		am, aFree := a.MinBudget(n)
		bm, bFree := b.MinBudget(n)
		if am != bm || aFree != bFree {
			return n + ": MinBudget differs"
		}
		for _, k := range fdkind.Kinds() {
			if ar, br := a.Lookup(n, k), b.Lookup(n, k); ar != br {
				return n + "/" + k.String() + ": " + ar.String() + " vs " + br.String()
			}
			for _, s := range []State{Uninterruptible, Running} {
				if ar, br := a.StateRule(n, k, s), b.StateRule(n, k, s); ar != br {
					return n + "/" + k.String() + "/" + s.String() + ": " + ar.String() + " vs " + br.String()
				}
			}
		}
	}
	return ""
}
