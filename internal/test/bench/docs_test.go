package bench

import (
	"os"
	"strings"
	"testing"

	"github.com/stallmon/stallmon/internal/testutil/repo"
)

// docs/benchmarks.md shows the table of one run:
// internal/test/bench/results.md, as make bench wrote it, with every row
// measured.
func TestBenchmarksDocQuotesResults(t *testing.T) {
	checkQuoted(t, "results.md", "Settings (full run)")
}

// It also shows a run of the service rows alone,
// internal/test/bench/results-services.md, until a full run has them.
func TestBenchmarksDocQuotesServiceResults(t *testing.T) {
	checkQuoted(t, "results-services.md", "Settings (full run, parts: services)")
	results, err := os.ReadFile("results-services.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range Services {
		if !strings.Contains(string(results), "| "+s.Bench+": ") {
			t.Errorf("internal/test/bench/results-services.md has no rows of %s", s.ID)
		}
	}
}

// And a run of the poll-cost and fallback rows, since the thread walk.
func TestBenchmarksDocQuotesPollResults(t *testing.T) {
	checkQuoted(t, "results-poll-minimal.md", "Settings (full run, parts: poll, minimal)")
}

// checkQuoted wants docs/benchmarks.md to quote the table in file (of
// this directory) as make bench wrote it, between markers naming it, and
// the table to be a full-size run's (settings) with every row measured.
func checkQuoted(t *testing.T, file, settings string) {
	t.Helper()
	begin := "<!-- begin internal/test/bench/" + file + ": written by make bench, do not edit -->\n"
	end := "<!-- end internal/test/bench/" + file + " -->\n"
	results, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := os.ReadFile(repo.Path(t, "docs/benchmarks.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(doc), begin)
	quoted, _, ok2 := strings.Cut(rest, end)
	if !ok || !ok2 {
		t.Fatalf("docs/benchmarks.md has no %q ... %q block", strings.TrimSpace(begin), strings.TrimSpace(end))
	}
	if quoted != string(results) {
		t.Errorf("docs/benchmarks.md does not quote internal/test/bench/%s as it is: copy the file (make bench wrote it) between the markers", file)
	}
	rows, err := parseTable(string(results))
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rows {
		if err := r.check(); err != nil {
			t.Error(err)
		}
		if r.cells[2] == "n/a" {
			t.Errorf("internal/test/bench/%s is not a full run: %q", file, r.cells)
		}
	}
	if !strings.Contains(string(results), settings+":") {
		t.Errorf("internal/test/bench/%s is not from the run it should be: no %q", file, settings)
	}
}

// The table of syscall costs in docs/cost.md quotes the same run: each of
// its figures is one of internal/test/bench/results.md's.
func TestDocsCostFiguresComeFromResults(t *testing.T) {
	results, err := os.ReadFile("results.md")
	if err != nil {
		t.Fatal(err)
	}
	rows, err := parseTable(string(results))
	if err != nil {
		t.Fatal(err)
	}
	figures := map[string]bool{}
	for _, r := range rows {
		figures[r.cells[2]] = true
	}
	doc, err := os.ReadFile(repo.Path(t, "docs/cost.md"))
	if err != nil {
		t.Fatal(err)
	}
	// The table is the one whose second column is in ns/call, up to the
	// first line that is not a row.
	_, cost, ok := strings.Cut(string(doc), "| ns/call |")
	if !ok {
		t.Fatal("docs/cost.md has no table in ns/call")
	}
	quoted := 0
	for i, line := range strings.Split(cost, "\n") {
		if i == 0 {
			continue // the rest of the header
		}
		if !strings.HasPrefix(line, "|") {
			break
		}
		cells := strings.Split(strings.Trim(strings.TrimSpace(line), "|"), "|")
		if len(cells) != 3 || strings.Contains(cells[1], "---") {
			continue // the header's rule
		}
		for _, f := range strings.Split(cells[1], "/") {
			f = strings.TrimSpace(f)
			quoted++
			if !figures[f] {
				t.Errorf("docs/cost.md's table quotes %s ns/call (%s), which internal/test/bench/results.md does not have", f, strings.TrimSpace(cells[0]))
			}
		}
	}
	if quoted < 5 {
		t.Errorf("found %d figures in docs/cost.md's table, want its getppid figures", quoted)
	}
}
