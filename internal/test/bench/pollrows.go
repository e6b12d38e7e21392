package bench

import "fmt"

// pollMeasures are the rows of each poll-cost case, in order.
var pollMeasures = [3]struct {
	Measure, Bench string
	Unit           Unit
}{{PollTime, "time per poll", Millis}, {PollCPU, "agent CPU", CorePct}, {PollRSS, "agent RSS", MB}}

// PollRows are the rows of one poll-cost case: this build's and, in a run
// with a baseline build, the baseline's, by measure (pollMeasures).
type PollRows struct {
	Current, Baseline [3]*Row
}

// AddPollRows adds the rows of case c of tracker tr to t. Without a
// baseline (baseline ""), each is compared with the same measure of
// first, the tracker's first case (nil for the first case itself), as the
// table always did. With one, each of this build's rows comes right after
// the baseline build's row of the same case and measure, labelled
// stallmon@baseline, and is compared with it: the ratio is this build over
// the baseline, measured in the same run.
func AddPollRows(t *Table, tr string, c PollCase, first [3]*Row, baseline string) PollRows {
	var rows PollRows
	for k, m := range pollMeasures {
		base := first[k]
		if baseline != "" {
			base = t.Add(&Row{Key: PollBaselineKey(tr, m.Measure, c), Bench: m.Bench, Unit: m.Unit,
				Case: fmt.Sprintf("stallmon@%s (%s), %s", baseline, tr, c)})
			rows.Baseline[k] = base
		}
		rows.Current[k] = t.Add(&Row{Key: PollKey(tr, m.Measure, c), Bench: m.Bench, Unit: m.Unit, Base: base,
			Case: fmt.Sprintf("stallmon (%s), %s", tr, c)})
	}
	return rows
}
