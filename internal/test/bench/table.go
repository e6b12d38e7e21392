package bench

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Unit is what a row's figure measures.
type Unit string

const (
	NsPerCall   Unit = "ns/call"
	ReqPerSec   Unit = "req/s"
	CallsPerSec Unit = "syscalls/s"
	Millis      Unit = "ms"
	Micros      Unit = "µs"
	CorePct     Unit = "% of a core"
	MB          Unit = "MB"     // 10^6 bytes
	MicrosReq   Unit = "µs/req" // CPU time per request
)

// WithinNoise ends the difference of a Noise row that its baseline's own
// rounds spread further than.
const WithinNoise = ", within noise"

// Row is one figure of the table, reduced from its samples (one per round
// or trial) and compared with another row of the same run.
type Row struct {
	Key     string // stable id for lookups (goals, tests); not shown
	Bench   string // what is measured, with the statistic if not the median
	Case    string // under which conditions
	Unit    Unit
	Samples []float64
	// Pct is the percentile the figure is (0: the median).
	Pct float64
	// Base is the row this one is compared with; nil for a baseline.
	Base *Row
	// Setting marks a figure that was set, not measured (a goal's bound):
	// its one sample is the figure.
	Setting bool
	// Missing says why there is no figure: a tool that is not installed,
	// which only a smoke run tolerates.
	Missing string
	// Noise: a difference from Base is called one only when it exceeds
	// the spread of Base's own rounds; within it the table says so. For
	// figures, like a service's, that the machine's load moves more than
	// the thing measured does.
	Noise bool
	// SpreadOf makes the row's figure the spread of that row's rounds
	// (max - min, see Spread): the noise its Noise rows are judged by,
	// stated in the table.
	SpreadOf *Row
}

// samples are the rounds the figure comes from: SpreadOf's for a spread.
func (r *Row) samples() []float64 {
	if r.SpreadOf != nil {
		return r.SpreadOf.Samples
	}
	return r.Samples
}

// Figure is the row's value: the median of its samples, or its
// percentile, or, for a SpreadOf row, the spread of that row's.
func (r *Row) Figure() float64 {
	switch {
	case r.SpreadOf != nil:
		return Spread(r.SpreadOf.Samples)
	case r.Pct == 0:
		return Median(r.Samples)
	}
	return Percentile(r.Samples, r.Pct)
}

// Measured tells whether the row has a figure.
func (r *Row) Measured() bool {
	if r.SpreadOf != nil && !r.SpreadOf.Measured() {
		return false
	}
	return r.Missing == "" && len(r.samples()) > 0
}

// WithinNoise tells whether a Noise row's difference from its Base is no
// larger than the spread of Base's rounds.
func (r *Row) WithinNoise() bool {
	if !r.Noise || r.Base == nil || !r.Measured() || !r.Base.Measured() {
		return false
	}
	return math.Abs(r.Figure()-r.Base.Figure()) <= Spread(r.Base.Samples)
}

// Table is the result of one run.
type Table struct {
	Rows []*Row
	// Header lines come before the table: the machine and the settings.
	Header []string
	// Goals are the verdicts drawn from the rows (see Judge).
	Goals []string
}

// Add appends a row and returns it.
func (t *Table) Add(r *Row) *Row {
	t.Rows = append(t.Rows, r)
	return r
}

// Row returns the row with key, or nil.
func (t *Table) Row(key string) *Row {
	for _, r := range t.Rows {
		if r.Key == key {
			return r
		}
	}
	return nil
}

// Columns are the table's header cells, in order.
var Columns = []string{"benchmark", "case", "figure", "unit", "compared with", "ratio", "difference", "n"}

// Markdown renders the header lines, the table and the goals.
func (t *Table) Markdown() string {
	var b strings.Builder
	for _, h := range t.Header {
		b.WriteString(h + "\n")
	}
	if len(t.Header) > 0 {
		b.WriteString("\n")
	}
	writeCells(&b, Columns)
	sep := make([]string, len(Columns))
	for i := range sep {
		sep[i] = "---"
	}
	writeCells(&b, sep)
	for _, r := range t.Rows {
		writeCells(&b, r.cells())
	}
	if len(t.Goals) > 0 {
		b.WriteString("\nGoals of issue 12, judged from this table:\n\n")
		for _, g := range t.Goals {
			b.WriteString("- " + g + "\n")
		}
	}
	return b.String()
}

func writeCells(b *strings.Builder, cells []string) {
	b.WriteString("| " + strings.Join(cells, " | ") + " |\n")
}

func (r *Row) cells() []string {
	figure, against, ratio, diff, n := "n/a", "", "", "", "0"
	switch {
	case !r.Measured():
		against = r.Missing
	case r.Setting:
		figure, n = Format(r.Figure()), "set"
	default:
		figure, n = Format(r.Figure()), strconv.Itoa(len(r.samples()))
	}
	if r.Measured() && r.Base != nil && r.Base.Measured() {
		against = r.Base.Case
		if r.Base.Bench != r.Bench {
			against = r.Base.Bench + ", " + r.Base.Case
		}
		base := r.Base.Figure()
		ratio = strconv.FormatFloat(r.Figure()/base, 'f', 2, 64) + "x"
		d := r.Figure() - base
		diff = Format(d)
		if d >= 0 {
			diff = "+" + diff
		}
		if r.WithinNoise() {
			diff += WithinNoise
		}
	}
	return []string{r.Bench, r.Case, figure, string(r.Unit), against, ratio, diff, n}
}

// Format prints a figure with three significant digits or as a whole
// number, never in exponent form: 0.0123, 1.23, 12.3, 123, 12345.
func Format(v float64) string {
	a := math.Abs(v)
	switch {
	case math.IsNaN(v) || math.IsInf(v, 0):
		return "n/a"
	case a >= 100 || a == 0:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case a >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	case a >= 1:
		return strconv.FormatFloat(v, 'f', 2, 64)
	}
	// Three significant digits below 1.
	digits := 2 - int(math.Floor(math.Log10(a)))
	return strconv.FormatFloat(v, 'f', digits, 64)
}

// MissingRows lists the rows without a figure, for a full run to refuse.
func (t *Table) MissingRows() []string {
	var out []string
	for _, r := range t.Rows {
		if !r.Measured() {
			out = append(out, fmt.Sprintf("%s / %s: %s", r.Bench, r.Case, r.Missing))
		}
	}
	return out
}
