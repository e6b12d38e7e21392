package bench

import (
	"os"
	"strings"
	"testing"

	"github.com/stallmon/stallmon/internal/testutil/repo"
)

// Markers around the quoted table in BENCHMARKS.md.
const (
	quoteBegin = "<!-- begin bench/results.md: written by make bench, do not edit -->\n"
	quoteEnd   = "<!-- end bench/results.md -->\n"
)

// BENCHMARKS.md shows the table of one run: bench/results.md, as make bench
// wrote it, with every row measured.
func TestBenchmarksDocQuotesResults(t *testing.T) {
	results, err := os.ReadFile("results.md")
	if err != nil {
		t.Fatal(err)
	}
	doc, err := os.ReadFile(repo.Path(t, "docs/benchmarks.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(doc), quoteBegin)
	quoted, _, ok2 := strings.Cut(rest, quoteEnd)
	if !ok || !ok2 {
		t.Fatalf("BENCHMARKS.md has no %q ... %q block", strings.TrimSpace(quoteBegin), strings.TrimSpace(quoteEnd))
	}
	if quoted != string(results) {
		t.Errorf("BENCHMARKS.md does not quote bench/results.md as it is: copy the file (make bench wrote it) between the markers")
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
			t.Errorf("bench/results.md is not a full run: %q", r.cells)
		}
	}
	if !strings.Contains(string(results), "Settings (full run)") {
		t.Error("bench/results.md is not from a full run (make bench)")
	}
}

// The README's table of syscall costs quotes the same run: each of its
// figures is one of bench/results.md's.
func TestREADMECostFiguresComeFromResults(t *testing.T) {
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
	readme, err := os.ReadFile(repo.Path(t, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, cost, ok := strings.Cut(string(readme), "\n## Cost\n")
	cost, _, _ = strings.Cut(cost, "\n## ")
	if !ok {
		t.Fatal("README has no Cost section")
	}
	quoted := 0
	for line := range strings.Lines(cost) {
		cells := strings.Split(strings.Trim(strings.TrimSpace(line), "|"), "|")
		if len(cells) != 3 || strings.Contains(cells[1], "---") || strings.TrimSpace(cells[1]) == "ns/call" {
			continue // not a row of the table, or its header
		}
		for _, f := range strings.Split(cells[1], "/") {
			f = strings.TrimSpace(f)
			quoted++
			if !figures[f] {
				t.Errorf("README's Cost table quotes %s ns/call (%s), which bench/results.md does not have", f, strings.TrimSpace(cells[0]))
			}
		}
	}
	if quoted < 5 {
		t.Errorf("found %d figures in the README's Cost table, want its getppid figures", quoted)
	}
}
