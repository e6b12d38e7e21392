package bench

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"testing"
)

// TestBenchmarksSmoke runs every row of the harness with tiny counts and
// checks the table it prints: every row that the full run has, each with
// a figure (or the reason it has none) and its comparison. The figures of
// such a short run mean nothing.
func TestBenchmarksSmoke(t *testing.T) {
	tab := runAll(t, smoke)
	if t.Failed() {
		return
	}
	md := tab.Markdown()
	t.Logf("\n%s", md)
	rows, err := parseTable(md)
	if err != nil {
		t.Fatal(err)
	}
	byKey := map[string]parsedRow{}
	for i, r := range tab.Rows {
		byKey[r.Key] = rows[i]
	}
	if len(rows) != len(tab.Rows) {
		t.Fatalf("the markdown has %d rows, the table %d", len(rows), len(tab.Rows))
	}
	for _, key := range expectedKeys(smoke, true) {
		r, ok := byKey[key]
		if !ok {
			t.Errorf("no row %s", key)
			continue
		}
		if err := r.check(); err != nil {
			t.Errorf("row %s: %v", key, err)
		}
	}
	// This build's poll-cost rows compare with the baseline build's.
	for _, tr := range Trackers {
		for _, pc := range smoke.pollCases {
			for _, m := range pollMeasures {
				cur, base := tab.Row(PollKey(tr.Name, m.Measure, pc)), tab.Row(PollBaselineKey(tr.Name, m.Measure, pc))
				if cur != nil && (base == nil || cur.Base != base) {
					t.Errorf("row %s is not compared with the baseline build's", cur.Key)
				}
			}
		}
	}
	// Per tracker: the watched process, the others, two poll cases, three
	// scopes on a busy host, a cgroup of many processes, the soak, the
	// latency and the services in two scopes; once: no false stall.
	// And per tracker that runs the minimal object, the fallback set's
	// comparisons: two getppid scopes and each poll case.
	want := 12*len(Trackers) + 1
	for _, tr := range Trackers {
		if tr.Minimal {
			want += 2 + len(smoke.fallbackPollCases)
		}
	}
	if len(tab.Goals) != want {
		t.Errorf("%d goals, want %d: %q", len(tab.Goals), want, tab.Goals)
	}
}

// expectedKeys are the rows a run of cfg must have, with a baseline
// build or not.
func expectedKeys(cfg config, baseline bool) []string {
	keys := []string{KeyNoTracker, KeyFloor, KeyStrace, KeyBpftrace,
		KeySendtoNone, KeySendtoGateOpen, KeySendtoGateShut, KeySendtoGateOther}
	for _, s := range Services {
		for _, m := range []string{ServiceCPU, ServiceRate} {
			keys = append(keys, ServiceKey(s.ID, m, "", ""), ServiceSpreadKey(s.ID, m))
			for _, tr := range Trackers {
				keys = append(keys, ServiceKey(s.ID, m, tr.Name, ServiceSelf), ServiceKey(s.ID, m, tr.Name, ServiceOther))
			}
		}
	}
	for _, tr := range Trackers {
		for _, s := range []string{ScopeOther, ScopeOtherTree, ScopeOtherCgroup, ScopeSelf} {
			keys = append(keys, GetppidKey(tr.Name, s))
		}
		if tr.Histogram {
			keys = append(keys, GetppidKey(tr.Name, ScopeSelfHist))
		}
		for _, pc := range cfg.pollCases {
			for _, m := range []string{PollTime, PollCPU, PollRSS} {
				keys = append(keys, PollKey(tr.Name, m, pc))
				if baseline {
					keys = append(keys, PollBaselineKey(tr.Name, m, pc))
				}
			}
		}
		keys = append(keys, LatencyKey(tr.Name, LatencyGoal, 99))
		for _, m := range []string{LatencyStall, LatencyLastAlive} {
			keys = append(keys, LatencyKey(tr.Name, m, 50), LatencyKey(tr.Name, m, 99))
		}
		keys = append(keys, SoakKey(tr.Name, SoakRate), SoakKey(tr.Name, SoakFound))
	}
	keys = append(keys, FallbackKey(KeyNoTracker), FallbackKey(KeyFloor))
	for _, tr := range Trackers {
		if !tr.Minimal {
			continue
		}
		for _, s := range []string{ScopeOther, ScopeSelf} {
			keys = append(keys, FallbackKey(GetppidKey(tr.Name, s)), MinimalGetppidKey(tr.Name, s))
		}
		for _, pc := range cfg.fallbackPollCases {
			minimal := pc
			minimal.Minimal = true
			for _, m := range []string{PollTime, PollCPU, PollRSS} {
				keys = append(keys, FallbackKey(PollKey(tr.Name, m, pc)), FallbackKey(PollKey(tr.Name, m, minimal)))
			}
		}
	}
	for _, sc := range cfg.snapshotCases {
		keys = append(keys, SnapshotKey(sc, false), SnapshotKey(sc, true))
	}
	return keys
}

// parsedRow is one line of the rendered table, cell by cell (Columns).
type parsedRow struct{ cells []string }

// parseTable reads the rows of the one table in md, checking its header.
func parseTable(md string) ([]parsedRow, error) {
	var rows []parsedRow
	header := -1
	for i, line := range strings.Split(md, "\n") {
		if !strings.HasPrefix(line, "|") {
			if header >= 0 && i > header+1 && line != "" {
				break // the text after the table
			}
			continue
		}
		if !strings.HasSuffix(line, " |") {
			return nil, fmt.Errorf("line %d does not end the row: %q", i+1, line)
		}
		cells := strings.Split(strings.TrimSuffix(strings.TrimPrefix(line, "| "), " |"), " | ")
		if len(cells) != len(Columns) {
			return nil, fmt.Errorf("line %d has %d cells, want %d: %q", i+1, len(cells), len(Columns), line)
		}
		switch {
		case header < 0:
			if strings.Join(cells, "|") != strings.Join(Columns, "|") {
				return nil, fmt.Errorf("header %q, want %q", cells, Columns)
			}
			header = i
		case i == header+1:
			if strings.Trim(strings.Join(cells, ""), "-") != "" {
				return nil, fmt.Errorf("line %d is not the header's separator: %q", i+1, line)
			}
		default:
			rows = append(rows, parsedRow{cells})
		}
	}
	if header < 0 {
		return nil, fmt.Errorf("no table in %q", md)
	}
	return rows, nil
}

// check wants a positive figure, a unit, a count and, when compared, a
// ratio consistent with the difference; or n/a with the reason.
func (r parsedRow) check() error {
	c := r.cells
	bench, figure, unit, against, ratio, diff, n := c[0], c[2], c[3], c[4], c[5], c[6], c[7]
	if bench == "" || c[1] == "" || unit == "" {
		return fmt.Errorf("empty benchmark, case or unit: %q", c)
	}
	if figure == "n/a" {
		if against == "" || n != "0" {
			return fmt.Errorf("no figure and no reason: %q", c)
		}
		return nil
	}
	v, err := strconv.ParseFloat(figure, 64)
	// A spread is 0 when the rounds agree, as a short run's clients'
	// rates, counted in whole milliseconds, can.
	if err != nil || v < 0 || v == 0 && c[1] != SpreadCase {
		return fmt.Errorf("figure %q is not a positive number: %q", figure, c)
	}
	if count, err := strconv.Atoi(n); n != "set" && (err != nil || count < 1) {
		return fmt.Errorf("count %q: %q", n, c)
	}
	if against == "" {
		if ratio != "" || diff != "" {
			return fmt.Errorf("a ratio without a baseline: %q", c)
		}
		return nil
	}
	x, err := strconv.ParseFloat(strings.TrimSuffix(ratio, "x"), 64)
	if err != nil || !strings.HasSuffix(ratio, "x") || x <= 0 {
		return fmt.Errorf("ratio %q: %q", ratio, c)
	}
	d, err := strconv.ParseFloat(strings.TrimSuffix(diff, WithinNoise), 64)
	if err != nil {
		return fmt.Errorf("difference %q: %q", diff, c)
	}
	// figure = base * ratio and figure - base = difference: the ratio
	// predicts the difference, up to the rounding of what is printed.
	want := v - v/x
	// The ratio is printed to 0.01: the baseline it gives, v/x, is off
	// by up to v/x² times that.
	if tol := 0.02*math.Abs(v) + printedStep(v) + printedStep(d) + 0.01*v/(x*x); math.Abs(want-d) > tol {
		return fmt.Errorf("ratio %s predicts a difference of %.3g, not %s: %q", ratio, want, diff, c)
	}
	return nil
}

// printedStep is the rounding step of Format(v).
func printedStep(v float64) float64 {
	a := math.Abs(v)
	switch {
	case a >= 100 || a == 0:
		return 1
	case a >= 10:
		return 0.1
	case a >= 1:
		return 0.01
	}
	return math.Pow(10, math.Floor(math.Log10(a))-2)
}
