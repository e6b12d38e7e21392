package bench

import "fmt"

// CompareFallback states what the fallback set (the minimal BPF object,
// which kernels without task storage, bpf_task_pt_regs or atomics load)
// costs beside the full object, from the minimal part's rows: per
// syscall over the empty-program floor and over no tracker, both of the
// same rounds, and per poll. Issue 22 sets no goal for it: these are
// figures for docs/kernels.md, never verdicts.
func CompareFallback(t *Table, trackers []Tracker, pollCases []PollCase) []string {
	var out []string
	none, floor := t.Row(FallbackKey(KeyNoTracker)), t.Row(FallbackKey(KeyFloor))
	for _, tr := range trackers {
		if !tr.Minimal {
			continue
		}
		for _, scope := range []string{ScopeSelf, ScopeOther} {
			what := fmt.Sprintf("Fallback set (issue 22, no goal): stallmon (%s) on %s", tr.Name, scopeLabel(scope))
			full, minimal := t.Row(FallbackKey(GetppidKey(tr.Name, scope))), t.Row(MinimalGetppidKey(tr.Name, scope))
			if !measured(none, floor, full, minimal) {
				out = append(out, what+": not measured in this run")
				continue
			}
			// The sign over paired rounds says whether a difference
			// outlasts the noise of a shared machine, which medians alone
			// hide.
			slower, rounds := slowerRounds(minimal.Samples, full.Samples)
			out = append(out, fmt.Sprintf("%s: minimal object %+.0f ns/call over the empty-program floor (%+.0f over no tracker), "+
				"full object %+.0f (%+.0f); the minimal object slower in %d of %d interleaved rounds",
				what, minimal.Figure()-floor.Figure(), minimal.Figure()-none.Figure(),
				full.Figure()-floor.Figure(), full.Figure()-none.Figure(), slower, rounds))
		}
		for _, pc := range pollCases {
			full, minimal := pc, pc
			full.Minimal, minimal.Minimal = false, true
			what := fmt.Sprintf("Fallback set (issue 22, no goal): stallmon (%s), %s", tr.Name, full)
			fp, mp := t.Row(FallbackKey(PollKey(tr.Name, PollTime, full))), t.Row(FallbackKey(PollKey(tr.Name, PollTime, minimal)))
			fc, mc := t.Row(FallbackKey(PollKey(tr.Name, PollCPU, full))), t.Row(FallbackKey(PollKey(tr.Name, PollCPU, minimal)))
			if !measured(fp, mp, fc, mc) {
				out = append(out, what+": not measured in this run")
				continue
			}
			out = append(out, fmt.Sprintf("%s: poll %s ms with the minimal object, %s ms with the full one (%.2fx); agent %s%% of a core, %s%%",
				what, Format(mp.Figure()), Format(fp.Figure()), mp.Figure()/fp.Figure(), Format(mc.Figure()), Format(fc.Figure())))
		}
	}
	return out
}
