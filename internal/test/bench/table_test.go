package bench

import (
	"math"
	"slices"
	"strings"
	"testing"
)

func TestFormat(t *testing.T) {
	for _, c := range []struct {
		v    float64
		want string
	}{
		{0, "0"}, {0.0123456, "0.0123"}, {0.5, "0.500"}, {1.234, "1.23"}, {12.34, "12.3"},
		{123.4, "123"}, {40123.7, "40124"}, {-0.0198, "-0.0198"}, {-17.26, "-17.3"}, {-4141, "-4141"},
		{math.NaN(), "n/a"}, {math.Inf(1), "n/a"},
	} {
		if got := Format(c.v); got != c.want {
			t.Errorf("Format(%v) = %q, want %q", c.v, got, c.want)
		}
	}
}

func TestPercentile(t *testing.T) {
	var trials []float64
	for i := 30; i >= 1; i-- {
		trials = append(trials, float64(i))
	}
	before := slices.Clone(trials)
	for _, c := range []struct {
		v    []float64
		p    float64
		want float64
	}{
		{trials, 99, 30}, {trials, 50, 15}, {trials, 90, 27}, {trials, 100, 30},
		{[]float64{5}, 99, 5}, {[]float64{3, 1, 2}, 50, 2}, {[]float64{4, 1, 3, 2}, 50, 2},
	} {
		if got := Percentile(c.v, c.p); got != c.want {
			t.Errorf("Percentile(%v, %v) = %v, want %v", c.v, c.p, got, c.want)
		}
	}
	if !slices.Equal(trials, before) {
		t.Error("Percentile reordered its input")
	}
	if got := Median(nil); !math.IsNaN(got) {
		t.Errorf("Median(nil) = %v, want NaN", got)
	}
}

func TestThousands(t *testing.T) {
	for n, want := range map[int]string{0: "0", 100: "100", 1000: "1,000", 10000: "10,000", 2000000: "2,000,000", -5000: "-5,000"} {
		if got := thousands(n); got != want {
			t.Errorf("thousands(%d) = %q, want %q", n, got, want)
		}
	}
}

// sampleTable has a baseline, rows compared with it (one in another
// benchmark), a setting and a row without a figure.
func sampleTable() *Table {
	tab := &Table{Header: []string{"Machine: test."}}
	none := tab.Add(&Row{Key: KeyNoTracker, Bench: "getppid", Case: "no tracker", Unit: NsPerCall, Samples: []float64{250, 240, 260}})
	tab.Add(&Row{Key: KeyFloor, Bench: "getppid", Case: "floor", Unit: NsPerCall, Samples: []float64{290, 300, 280}, Base: none})
	goal := tab.Add(&Row{Key: "goal", Bench: "latency goal", Case: "budget 1s", Unit: Millis, Samples: []float64{1600}, Setting: true})
	tab.Add(&Row{Key: "p99", Bench: "hang to stall, p99", Case: "tracepoint", Unit: Millis, Samples: []float64{1050, 1250, 1100}, Pct: 99, Base: goal})
	tab.Add(&Row{Key: KeyBpftrace, Bench: "getppid", Case: "bpftrace", Unit: NsPerCall, Base: none, Missing: "bpftrace not installed"})
	tab.Goals = []string{"a goal"}
	return tab
}

func TestMarkdownIsWellFormed(t *testing.T) {
	md := sampleTable().Markdown()
	rows, err := parseTable(md)
	if err != nil {
		t.Fatalf("%v\n%s", err, md)
	}
	if len(rows) != 5 {
		t.Fatalf("%d rows, want 5:\n%s", len(rows), md)
	}
	for _, r := range rows {
		if err := r.check(); err != nil {
			t.Error(err)
		}
	}
	want := []string{
		"| getppid | floor | 290 | ns/call | no tracker | 1.16x | +40.0 | 3 |",
		"| latency goal | budget 1s | 1600 | ms |  |  |  | set |",
		"| hang to stall, p99 | tracepoint | 1250 | ms | latency goal, budget 1s | 0.78x | -350 | 3 |",
		"| getppid | bpftrace | n/a | ns/call | bpftrace not installed |  |  | 0 |",
		"- a goal",
	}
	for _, line := range want {
		if !strings.Contains(md, line+"\n") {
			t.Errorf("no line %q in\n%s", line, md)
		}
	}
}

// The smoke test's checks must be able to fail.
func TestMalformedTablesAreRejected(t *testing.T) {
	md := sampleTable().Markdown()
	for name, bad := range map[string]string{
		"header":     strings.Replace(md, "| compared with |", "| against |", 1),
		"cell count": strings.Replace(md, "| 290 | ns/call |", "| 290 |", 1),
		"open row":   strings.Replace(md, "| +40.0 | 3 |", "| +40.0 | 3", 1),
		"no table":   strings.ReplaceAll(md, "|", " "),
		"separator":  strings.Replace(md, "| --- | --- |", "| --- | x |", 1),
	} {
		if _, err := parseTable(bad); err == nil {
			t.Errorf("%s: parseTable accepted\n%s", name, bad)
		}
	}
	for name, cells := range map[string][]string{
		"ratio and difference disagree": {"getppid", "floor", "290", "ns/call", "no tracker", "2.00x", "+40", "3"},
		"a small ratio, off":            {"poll", "more threads", "0.437", "ms", "fewer", "0.25x", "-1.50", "1"},
		"no figure, no reason":          {"getppid", "floor", "n/a", "ns/call", "", "", "", "0"},
		"negative figure":               {"getppid", "floor", "-3", "ns/call", "", "", "", "3"},
		"ratio without a baseline":      {"getppid", "floor", "290", "ns/call", "", "1.16x", "+40", "3"},
		"no count":                      {"getppid", "floor", "290", "ns/call", "", "", "", "0"},
		"empty unit":                    {"getppid", "floor", "290", "", "", "", "", "3"},
	} {
		if err := (parsedRow{cells}).check(); err == nil {
			t.Errorf("%s: check accepted %q", name, cells)
		}
	}
}

func TestMissingRows(t *testing.T) {
	got := sampleTable().MissingRows()
	if len(got) != 1 || !strings.Contains(got[0], "bpftrace not installed") {
		t.Errorf("MissingRows = %q, want the bpftrace row", got)
	}
}

// A difference is called only beyond the spread of the baseline's
// rounds; the spread row states it, and the table marks the others.
func TestWithinNoise(t *testing.T) {
	tab := &Table{}
	none := tab.Add(&Row{Key: "none", Bench: "b", Case: "no tracker", Unit: MicrosReq, Samples: []float64{5.0, 5.4, 5.2}})
	spread := tab.Add(&Row{Key: "spread", Bench: "b", Case: "spread", Unit: MicrosReq, SpreadOf: none})
	inside := tab.Add(&Row{Key: "in", Bench: "b", Case: "inside", Unit: MicrosReq, Base: none, Noise: true, Samples: []float64{5.5, 5.6, 5.3}})
	edge := tab.Add(&Row{Key: "edge", Bench: "b", Case: "edge", Unit: MicrosReq, Base: none, Noise: true, Samples: []float64{4.8}})
	beyond := tab.Add(&Row{Key: "out", Bench: "b", Case: "beyond", Unit: MicrosReq, Base: none, Noise: true, Samples: []float64{5.9, 5.7, 6.0}})
	plain := tab.Add(&Row{Key: "plain", Bench: "b", Case: "not judged", Unit: MicrosReq, Base: none, Samples: []float64{5.25}})
	if got := spread.Figure(); got < 0.399 || got > 0.401 {
		t.Errorf("spread %v, want 0.4", got)
	}
	for _, c := range []struct {
		r      *Row
		within bool
	}{{inside, true}, {edge, true}, {beyond, false}, {plain, false}} {
		if got := c.r.WithinNoise(); got != c.within {
			t.Errorf("%s: within noise %t, want %t", c.r.Case, got, c.within)
		}
	}
	rows, err := parseTable(tab.Markdown())
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rows {
		if err := r.check(); err != nil {
			t.Error(err)
		}
		marked := strings.HasSuffix(r.cells[6], WithinNoise)
		if want := r.cells[1] == "inside" || r.cells[1] == "edge"; marked != want {
			t.Errorf("%s: difference %q marked within noise: %t, want %t", r.cells[1], r.cells[6], marked, want)
		}
	}
	if rows[1].cells[7] != "3" {
		t.Errorf("the spread row counts %s rounds, want the baseline's 3", rows[1].cells[7])
	}
	// A spread of a baseline without figures has none either.
	if (&Row{SpreadOf: &Row{Missing: "ab not installed"}}).Measured() {
		t.Error("a spread of no rounds is measured")
	}
}
