// Package metrics exports stallmon's state to Prometheus: the agent's
// verdicts and its own health, the kernel tracker's counters, latency
// histogram and program cost, and the listener's view of its peers.
//
// Everything is read at scrape time inside prometheus.Collector
// implementations and emitted as const metrics, like cloudflare's
// ebpf_exporter: nothing runs between scrapes, and a scrape sees one
// consistent copy of each source. A failed kernel read bumps
// stallmon_tracker_read_errors_total instead of failing the scrape.
//
// Labels stay bounded: counters are labelled by syscall name, packet
// state or rejection reason, never by pid or tid; the only per-thread
// series is stallmon_stalled_thread_elapsed_seconds, which exists only for
// threads that are over their budget right now.
//
// The arrows point one way: metrics reads agent, tracker, peer and budget,
// and none of them imports it.
package metrics

// Namespace prefixes every stallmon metric.
const Namespace = "stallmon"
