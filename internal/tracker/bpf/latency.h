// The opt-in syscall latency histogram that sys_exit fills, in the
// in-flight word's time units. Its own header because only sys_exit
// touches it, and only when the agent asks for it.

#ifndef STALLMON_LATENCY_H
#define STALLMON_LATENCY_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

#include "native.h"
#include "word.h"

// Syscall latency histogram, filled at sys_exit when latency_histogram is
// set before load. It is a load-time constant so that, when off, the
// verifier removes the code: only the load of the switch itself remains.
volatile const bool latency_histogram = false;

// Per native syscall number (a 32-bit call counts as the native call it
// is, see native.h), log2 buckets of the time from sys_enter to sys_exit
// in units of 2^TS_SHIFT ns (the resolution of the in-flight word). Bucket
// 0 holds latencies under one unit, bucket i (0 < i < HIST_BUCKETS-1)
// those under 2^i units, the last everything longer. The map is named
// after the metric it becomes; it is read at scrape time.
#define HIST_NR 512
#define HIST_BUCKETS 32

struct latency_hist {
	__u64 buckets[HIST_BUCKETS];
	__u64 sum; // in 2^TS_SHIFT ns units
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, HIST_NR);
	__type(key, __u32);
	__type(value, struct latency_hist);
} syscall_latency_seconds SEC(".maps");

// floor(log2(v)) for v > 0, without loops or a clz instruction.
static __always_inline __u32 log2_u64(__u64 v)
{
	__u32 r = 0, shift;

	shift = (v > 0xFFFFFFFFULL) << 5; v >>= shift; r |= shift;
	shift = (v > 0xFFFF) << 4; v >>= shift; r |= shift;
	shift = (v > 0xFF) << 3; v >>= shift; r |= shift;
	shift = (v > 0xF) << 2; v >>= shift; r |= shift;
	shift = (v > 0x3) << 1; v >>= shift; r |= shift;
	r |= (v >> 1);
	return r;
}

// observe adds one finished syscall, entered at word, to the histogram.
// Atomic adds because the target's threads exit syscalls on several CPUs
// at once. A per-CPU map, which needs none, measured slower (its lookup is
// not inlined here) and multiplies what a scrape reads.
static __always_inline void observe(__u64 word)
{
	__u32 nr = native_nr((word >> ABI_SHIFT) & ((1 << ABI_BITS) - 1), word & NR_MASK);

	if (nr >= HIST_NR)
		return;
	struct latency_hist *h = bpf_map_lookup_elem(&syscall_latency_seconds, &nr);
	if (!h)
		return;
	__u64 units = (bpf_ktime_get_ns() >> TS_SHIFT) - (word >> TS_BITS_SHIFT);
	__u32 slot = units ? log2_u64(units) + 1 : 0;
	if (slot >= HIST_BUCKETS)
		slot = HIST_BUCKETS - 1;
	__sync_fetch_and_add(&h->buckets[slot], 1);
	__sync_fetch_and_add(&h->sum, units);
}

#endif
