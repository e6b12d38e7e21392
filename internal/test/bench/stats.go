package bench

import (
	"math"
	"slices"
)

// Percentile is the nearest-rank p-th percentile of v (0 < p <= 100): the
// smallest sample with at least p% of the samples at or below it. With
// few samples p99 is the largest, which is what a bound must hold for.
// It is NaN for no samples.
func Percentile(v []float64, p float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	s := slices.Clone(v)
	slices.Sort(s)
	rank := int(math.Ceil(p / 100 * float64(len(s))))
	return s[min(max(rank, 1), len(s))-1]
}

// Median is Percentile(v, 50): the middle sample, the lower middle one
// for an even count.
func Median(v []float64) float64 { return Percentile(v, 50) }

// slowerRounds counts the rounds in which x was above base, x and base
// being measured in the same rounds (same index, interleaved).
func slowerRounds(x, base []float64) (slower, rounds int) {
	rounds = min(len(x), len(base))
	for i := range rounds {
		if x[i] > base[i] {
			slower++
		}
	}
	return slower, rounds
}

// Spread is the range of v, max - min: how far the rounds of one case
// moved with nothing changed but the machine's noise. It is NaN for no
// samples.
func Spread(v []float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	return slices.Max(v) - slices.Min(v)
}
