package bench

import (
	"slices"

	"github.com/stallmon/stallmon/internal/tracker"
)

// Tracker is one of stallmon's trackers, as the rows that depend on the
// tracker run it: in this process through monitor (the getppid rows) or
// as `stallmon attach` (redis, poll cost, detection latency).
type Tracker struct {
	Name string // in the rows' cases: "stallmon (NAME) on ..."
	// Args select it on stallmon's command line; none for the default.
	Args []string
	// Options selects it in tracker.Options; nil for the default.
	Options func(*tracker.Options)
	// Histogram: it supports the latency histogram (a row of its own).
	Histogram bool
	// JudgedAgainst is the key of the getppid row its overhead is judged
	// against in the goals: the empty-program floor for a tracker that
	// runs a program at every syscall, no tracker at all for one that
	// does not.
	JudgedAgainst string
	// Minimal: it runs with the minimal BPF object (--bpf-features=minimal)
	// too, which the minimal part measures; the sampled tracker is
	// refused with it, for lack of a sys_enter to find registers from.
	Minimal bool
}

// Trackers are the trackers every tracker-dependent row runs, in order.
// A tracker joins with one line.
var Trackers = []Tracker{
	{Name: "tracepoint", Histogram: true, JudgedAgainst: KeyFloor, Minimal: true},
	{Name: "sampled", Args: []string{"--tracker=sampled"}, Options: func(o *tracker.Options) { o.Kind = tracker.Sampled }, JudgedAgainst: KeyNoTracker},
}

// MonitorOptions returns base with the tracker selected.
func (tr Tracker) MonitorOptions(base tracker.Options) tracker.Options {
	if tr.Options != nil {
		tr.Options(&base)
	}
	return base
}

// AttachArgs returns stallmon's arguments with the tracker selected.
func (tr Tracker) AttachArgs(args ...string) []string {
	return append(slices.Clone(args), tr.Args...)
}
