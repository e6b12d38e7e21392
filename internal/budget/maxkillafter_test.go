package budget

import (
	"testing"
	"time"

	"github.com/stallmon/stallmon/internal/fdkind"
)

func TestMaxKillAfter(t *testing.T) {
	cases := []struct {
		src   string
		max   time.Duration
		kills bool
	}{
		{stateTable, 120 * sec, true},
		{"default: unbounded\n", 0, false},
		{"default: {budget: 5s, kill_after: never}\n", 0, false},
		{"default: {budget: 5s, kill_after: never}\nstates:\n  stopped: {budget: 5s, kill_after: 10m}\n", 10 * time.Minute, true},
		{"default: {budget: 5s, kill_after: 1m}\nstates:\n  uninterruptible: {budget: 5s, kill_after: 3m}\n", 3 * time.Minute, true},
		{"default: {budget: 5s, kill_after: 1m}\nsyscalls:\n  poll: {budget: unbounded, running: {budget: 1s, kill_after: 4m}}\n", 4 * time.Minute, true},
		{"default: {budget: 5s, kill_after: 1m}\nsyscalls:\n  ioctl:\n    by_fd:\n      other: {budget: unbounded, running: {budget: 1s, kill_after: 5m}}\n", 5 * time.Minute, true},
		{"default: unbounded\nsyscalls:\n  read:\n    by_fd: {regular: {budget: 1s, kill_after: 2m}}\n", 2 * time.Minute, true},
	}
	for _, c := range cases {
		tb := mustParse(t, c.src)
		if max, kills := tb.MaxKillAfter(); max != c.max || kills != c.kills {
			t.Errorf("MaxKillAfter of\n%s= %v, %v; want %v, %v", c.src, max, kills, c.max, c.kills)
		}
		// Nothing the agent can look up may kill later than promised.
		max, _ := tb.MaxKillAfter()
		for _, name := range append(tb.Names(), "", "unlisted") {
			for _, k := range fdkind.Kinds() {
				for _, r := range []Rule{tb.Lookup(name, k), tb.StateRule(name, k, Uninterruptible), tb.StateRule(name, k, Running)} {
					if r.Kills() && r.KillAfter > max {
						t.Errorf("%s/%v: %v kills after MaxKillAfter %v", name, k, r, max)
					}
				}
			}
		}
	}
}
