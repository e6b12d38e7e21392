package tracker

import (
	"errors"
	"fmt"
	"time"

	"github.com/cilium/ebpf"

	"github.com/stallmon/stallmon/internal/tracker/gen"
)

// Histogram geometry, from bpf/latency.h; the syscall numbers it covers
// are the size of its map.
const (
	histBuckets = len(gen.StallmonLatencyHist{}.Buckets)
	// tsUnit is the resolution of the in-flight word, in which the kernel
	// measures latency: 2^tsShift ns.
	tsUnit = time.Duration(1) << tsShift
)

// LatencyBounds returns the upper bounds of the latency histogram's
// buckets, from about 1 µs doubling up to about 18 minutes; a last bucket
// above the last bound (+Inf) holds anything longer. Latencies are
// measured in units of 1.024 µs.
func LatencyBounds() []time.Duration {
	b := make([]time.Duration, histBuckets-1)
	for i := range b {
		b[i] = tsUnit << i
	}
	return b
}

// SyscallLatency is the latency distribution of one syscall of the
// target since attach.
type SyscallLatency struct {
	Nr      int
	Syscall string
	// Counts has one count per bucket, not cumulative: Counts[i] counts
	// latencies under LatencyBounds()[i] and at or above the bound before;
	// the last element counts the rest.
	Counts []uint64
	Count  uint64
	Sum    time.Duration
}

// LatencyHistogramEnabled reports whether the tracker was loaded with
// Options.LatencyHistogram.
func (m *Tracker) LatencyHistogramEnabled() bool { return m.opts.LatencyHistogram }

// LatencyHistogram reads the kernel histogram: one entry per syscall that
// returned at least once since attach, ordered by number. It returns nil
// when the histogram is off. It is safe to call concurrently with any
// other method.
func (m *Tracker) LatencyHistogram() ([]SyscallLatency, error) {
	if !m.opts.LatencyHistogram {
		return nil, nil
	}
	unlock, err := m.holdOpen()
	if err != nil {
		return nil, err
	}
	defer unlock()
	hists, err := readHistograms(m.objs.SyscallLatencySeconds)
	if err != nil {
		return nil, fmt.Errorf("reading latency histogram: %w", err)
	}
	var out []SyscallLatency
	for nr, h := range hists {
		var count uint64
		for _, c := range h.Buckets {
			count += c
		}
		if count == 0 {
			continue
		}
		out = append(out, SyscallLatency{
			Nr: nr, Syscall: SyscallName(nr),
			Counts: append([]uint64(nil), h.Buckets[:]...),
			Count:  count, Sum: time.Duration(h.Sum) * tsUnit,
		})
	}
	return out, nil
}

// readHistograms reads every entry in one batch (one syscall for all
// syscalls), or entry by entry on kernels without batch lookups.
func readHistograms(m *ebpf.Map) ([]gen.StallmonLatencyHist, error) {
	nrs := m.MaxEntries()
	keys := make([]uint32, nrs)
	vals := make([]gen.StallmonLatencyHist, nrs)
	var cursor ebpf.MapBatchCursor
	n, err := m.BatchLookup(&cursor, keys, vals, nil)
	switch {
	case errors.Is(err, ebpf.ErrKeyNotExist):
		// The end of the map, reached in this one batch.
	case errors.Is(err, ebpf.ErrNotSupported):
		for i := range vals {
			if err := m.Lookup(uint32(i), &vals[i]); err != nil {
				return nil, fmt.Errorf("entry %d: %w", i, err)
			}
		}
		return vals, nil
	case err != nil:
		return nil, err
	}
	out := make([]gen.StallmonLatencyHist, nrs)
	for i := range n {
		if keys[i] < nrs {
			out[keys[i]] = vals[i]
		}
	}
	return out, nil
}
