package bench

import (
	"strings"
	"testing"
)

// fill gives each row one sample, so that the table renders its ratios.
func fill(rows [3]*Row, poll, cpu, rss float64) {
	for k, v := range []float64{poll, cpu, rss} {
		rows[k].Samples = []float64{v}
	}
}

// Without a baseline build the poll-cost rows are what they always were:
// the same keys, each compared with the tracker's first case.
func TestPollRowsWithoutBaseline(t *testing.T) {
	tab := &Table{}
	small, big := PollCase{Threads: 100}, PollCase{Threads: 10000}
	first := AddPollRows(tab, "tracepoint", small, [3]*Row{}, "")
	second := AddPollRows(tab, "tracepoint", big, first.Current, "")
	fill(first.Current, 0.3, 0.8, 30)
	fill(second.Current, 12, 11, 31)
	if len(tab.Rows) != 6 {
		t.Fatalf("%d rows, want 6", len(tab.Rows))
	}
	for k := range pollMeasures {
		if first.Baseline[k] != nil || second.Baseline[k] != nil {
			t.Errorf("a baseline row without a baseline build")
		}
		if first.Current[k].Base != nil || second.Current[k].Base != first.Current[k] {
			t.Errorf("measure %d: not compared with the first case", k)
		}
	}
	// The keys the goals and docs look up.
	if got, want := second.Current[0].Key, "poll/tracepoint/poll/10000/false/0"; got != want {
		t.Errorf("key %q, want %q", got, want)
	}
	if got := tab.Row("poll/tracepoint/rss/100/false/0"); got != first.Current[2] {
		t.Errorf("no row poll/tracepoint/rss/100/false/0")
	}
	md := tab.Markdown()
	line := "| time per poll | stallmon (tracepoint), 10,000 threads (10 busy), made after attach | 12.0 | ms | stallmon (tracepoint), 100 threads (1 busy), made after attach | 40.00x | +11.7 | 1 |"
	if !strings.Contains(md, line+"\n") {
		t.Errorf("no line %q in\n%s", line, md)
	}
}

// With a baseline build each of this build's rows follows the baseline's
// row of the same case and measure and is compared with it: the ratio is
// this build over the baseline, whatever the case.
func TestPollRowsWithBaseline(t *testing.T) {
	tab := &Table{}
	small, bounded := PollCase{Threads: 100}, PollCase{Threads: 1000, Bounded: true}
	first := AddPollRows(tab, "sampled", small, [3]*Row{}, "00e3240")
	second := AddPollRows(tab, "sampled", bounded, first.Current, "00e3240")
	fill(first.Current, 0.3, 0.8, 30)
	fill(first.Baseline, 0.3, 0.8, 30)
	fill(second.Current, 2.2, 3, 30)
	fill(second.Baseline, 2, 2.5, 40)
	if len(tab.Rows) != 12 {
		t.Fatalf("%d rows, want 12", len(tab.Rows))
	}
	for i, r := range tab.Rows {
		pair := []PollRows{first, second}[i/6]
		want := pair.Baseline[i%6/2]
		if i%2 == 1 {
			want = pair.Current[i%6/2]
		}
		if r != want {
			t.Errorf("row %d is %s, want %s", i, r.Key, want.Key)
		}
	}
	for _, p := range []PollRows{first, second} {
		for k := range pollMeasures {
			if p.Current[k].Base != p.Baseline[k] || p.Baseline[k].Base != nil {
				t.Errorf("%s: compared with %v, want the baseline's row", p.Current[k].Key, p.Current[k].Base)
			}
			if want := "baseline/" + p.Current[k].Key; p.Baseline[k].Key != want {
				t.Errorf("baseline key %q, want %q", p.Baseline[k].Key, want)
			}
		}
	}
	if got, want := second.Current[0].Key, "poll/sampled/poll/1000/false/0/bounded"; got != want {
		t.Errorf("key %q, want %q", got, want)
	}
	md := tab.Markdown()
	rows, err := parseTable(md)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rows {
		if err := r.check(); err != nil {
			t.Error(err)
		}
	}
	for _, line := range []string{
		"| time per poll | stallmon@00e3240 (sampled), 1,000 threads (1 busy) asleep in openat of a FIFO (bounded: --budget 1h), made after attach | 2.00 | ms |  |  |  | 1 |",
		"| time per poll | stallmon (sampled), 1,000 threads (1 busy) asleep in openat of a FIFO (bounded: --budget 1h), made after attach | 2.20 | ms | stallmon@00e3240 (sampled), 1,000 threads (1 busy) asleep in openat of a FIFO (bounded: --budget 1h), made after attach | 1.10x | +0.200 | 1 |",
		"| agent RSS | stallmon (sampled), 1,000 threads (1 busy) asleep in openat of a FIFO (bounded: --budget 1h), made after attach | 30.0 | MB | stallmon@00e3240 (sampled), 1,000 threads (1 busy) asleep in openat of a FIFO (bounded: --budget 1h), made after attach | 0.75x | -10.0 | 1 |",
	} {
		if !strings.Contains(md, line+"\n") {
			t.Errorf("no line %q in\n%s", line, md)
		}
	}
}
