package bench

import (
	"strings"
	"testing"
)

// Each service has, per measure, no tracker, the spread of its rounds and
// each tracker in both scopes compared with it.
func TestServiceRows(t *testing.T) {
	tab := &Table{}
	cases := AddServiceRows(tab, Services[0], Trackers)
	if want := 1 + 2*len(Trackers); len(cases) != want {
		t.Fatalf("%d cases, want %d", len(cases), want)
	}
	if want := len(serviceMeasures) * (2 + 2*len(Trackers)); len(tab.Rows) != want {
		t.Fatalf("%d rows, want %d", len(tab.Rows), want)
	}
	for k, m := range serviceMeasures {
		none := tab.Row(ServiceKey(Services[0].ID, m.Measure, "", ""))
		spread := tab.Row(ServiceSpreadKey(Services[0].ID, m.Measure))
		if none == nil || none != cases[0].Rows[k] || none.Base != nil {
			t.Fatalf("%s: no baseline row, or not the first case's", m.Measure)
		}
		if spread == nil || spread.SpreadOf != none {
			t.Errorf("%s: no spread of the baseline's rounds", m.Measure)
		}
		for _, c := range cases[1:] {
			r := c.Rows[k]
			if r.Key != ServiceKey(Services[0].ID, m.Measure, c.Tracker.Name, c.Scope) || r.Base != none || !r.Noise {
				t.Errorf("%s: row %q is not judged against the baseline's noise", r.Key, r.Case)
			}
		}
	}
}

func TestJudgeServices(t *testing.T) {
	tab := &Table{}
	for _, s := range Services {
		cases := AddServiceRows(tab, s, Trackers)
		for _, c := range cases {
			c.Rows[0].Samples = []float64{10, 10.5, 11} // CPU per request: spread 10%
			c.Rows[1].Samples = []float64{1000, 1200, 800}
		}
	}
	slow := tab.Row(ServiceKey("nginx", ServiceCPU, Trackers[0].Name, ServiceSelf))
	slow.Samples = []float64{12, 12, 12}
	got := JudgeServices(tab, Trackers)
	if want := 2 * len(Trackers); len(got) != want {
		t.Fatalf("%d lines, want %d: %q", len(got), want, got)
	}
	if !strings.Contains(got[0], "nginx +14.3% (spread 9.5%)") {
		t.Errorf("the difference beyond noise is not called: %q", got[0])
	}
	if !strings.Contains(got[0], "redis within noise (+0.0%, spread 9.5%)") || !strings.Contains(got[1], "nginx within noise") {
		t.Errorf("a difference within noise is called: %q", got[:2])
	}
	if got := JudgeServices(&Table{}, Trackers[:1]); !strings.Contains(got[0], "redis not measured") {
		t.Errorf("no rows: %q", got)
	}
}

func TestParseAB(t *testing.T) {
	report := func(complete, failed, keepAlive, non2xx string) string {
		s := "Document Length:        4096 bytes\n\nConcurrency Level:      50\nTime taken for tests:   0.522 seconds\n" +
			"Complete requests:      " + complete + "\nFailed requests:        " + failed + "\n"
		if non2xx != "" {
			s += "Non-2xx responses:      " + non2xx + "\n"
		}
		return s + "Keep-Alive requests:    " + keepAlive + "\nRequests per second:    95855.96 [#/sec] (mean)\n" +
			"Time per request:       0.522 [ms] (mean)\n"
	}
	n, rate, err := parseAB(report("50000", "0", "50000", ""), 50000)
	if err != nil || n != 50000 || rate != 95855.96 {
		t.Errorf("a good report: %d requests at %v (%v)", n, rate, err)
	}
	for name, bad := range map[string]string{
		"short":         report("49000", "0", "49000", ""),
		"failed":        report("50000", "3", "50000", ""),
		"not 2xx":       report("50000", "0", "50000", "50000"),
		"no keep-alive": report("50000", "0", "0", ""),
		"no report":     "apr_socket_recv: Connection refused (111)\n",
	} {
		if _, _, err := parseAB(bad, 50000); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

// Rounds that agree have a spread of 0, which the table's check accepts
// for a spread row only.
func TestZeroSpreadRow(t *testing.T) {
	tab := &Table{}
	none := tab.Add(&Row{Key: "none", Bench: "b", Case: "no tracker", Unit: ReqPerSec, Samples: []float64{125000, 125000}})
	tab.Add(&Row{Key: "spread", Bench: "b", Case: SpreadCase, Unit: ReqPerSec, SpreadOf: none})
	tab.Add(&Row{Key: "zero", Bench: "b", Case: "nothing done", Unit: ReqPerSec, Samples: []float64{0}})
	rows, err := parseTable(tab.Markdown())
	if err != nil {
		t.Fatal(err)
	}
	if err := rows[1].check(); err != nil || rows[1].cells[2] != "0" {
		t.Errorf("a spread of 0 (%q): %v", rows[1].cells[2], err)
	}
	if err := rows[2].check(); err == nil {
		t.Error("a figure of 0 passed outside a spread row")
	}
}
