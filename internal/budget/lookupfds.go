package budget

import (
	"time"

	"github.com/stallmon/stallmon/internal/fdkind"
)

// LookupFDs returns the rule for a syscall that operates on several fds
// (sendfile(out, in), splice(in, _, out), tee, copy_file_range): the
// strictest of the rules each kind selects (Lookup(syscall, k) for each
// k), so that a regular file on a hung file system bounds a sendfile to a
// socket. Strictest: a bounded rule beats an unbounded one; among bounded
// ones the smaller budget; on a tie the smaller kill_after, never counting
// as infinite. With one kind it equals Lookup.
//
// It also returns the kind that decided: the first of kinds whose rule is
// the strictest (kinds[0] when every rule is unbounded), so it is
// fdkind.None only when kinds is empty or the syscall's own rule decided
// through an fd passed as None.
func (t *Table) LookupFDs(syscall string, kinds ...fdkind.Kind) (Rule, fdkind.Kind) {
	if len(kinds) == 0 {
		return t.Lookup(syscall, fdkind.None), fdkind.None
	}
	best, by := t.Lookup(syscall, kinds[0]), kinds[0]
	for _, k := range kinds[1:] {
		if r := t.Lookup(syscall, k); stricter(r, best) {
			best, by = r, k
		}
	}
	return best, by
}

// stricter reports whether a judges a syscall strictly sooner than b.
func stricter(a, b Rule) bool {
	switch {
	case a.Unbounded:
		return false
	case b.Unbounded:
		return true
	case a.Budget != b.Budget:
		return a.Budget < b.Budget
	}
	return killRank(a.KillAfter) < killRank(b.KillAfter)
}

// killRank orders kill_after values with never after every duration.
func killRank(d time.Duration) time.Duration {
	if d == 0 {
		return 1<<63 - 1
	}
	return d
}
