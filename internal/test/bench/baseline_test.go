package bench

import (
	"os"
	"testing"
)

// Environment of a run with a baseline build, set by
// `make bench BENCH_BASELINE=REF`.
const (
	baselineEnv    = "STALLMON_BENCH_BASELINE"     // the baseline's stallmon binary
	baselineRefEnv = "STALLMON_BENCH_BASELINE_REF" // what it was built from: the rows' stallmon@REF
)

// Build is a stallmon binary that the poll-cost rows run beside this
// tree's.
type Build struct {
	Label string // the rows name it stallmon@Label
	Bin   string
}

// baselineBuild is the build whose poll-cost rows this run's compare
// with: $STALLMON_BENCH_BASELINE; in a smoke run without it, this very
// binary, so that make test runs the baseline's rows too; nil for none.
func baselineBuild(t *testing.T, cfg config) *Build {
	t.Helper()
	bin := os.Getenv(baselineEnv)
	if bin == "" {
		if cfg.selfBaseline {
			return &Build{Label: "smoke", Bin: stallmonBin}
		}
		return nil
	}
	st, err := os.Stat(bin)
	if err != nil {
		t.Fatalf("%s: %v", baselineEnv, err)
	}
	if !st.Mode().IsRegular() || st.Mode()&0o111 == 0 {
		t.Fatalf("%s=%s is not an executable file", baselineEnv, bin)
	}
	label := os.Getenv(baselineRefEnv)
	if label == "" {
		label = "baseline"
	}
	return &Build{Label: label, Bin: bin}
}
