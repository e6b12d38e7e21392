package metrics

import (
	"log/slog"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/stallmon/stallmon/internal/event"
	"github.com/stallmon/stallmon/internal/tracker"
)

// TrackerSource is the kernel side read at scrape time; *tracker.Tracker
// is one.
type TrackerSource interface {
	Counters() (tracker.Counters, error)
	LatencyHistogramEnabled() bool
	LatencyHistogram() ([]tracker.SyscallLatency, error)
	ProgramStats() ([]tracker.ProgramStats, error)
}

// Sources of kernel reads, the label of stallmon_tracker_read_errors_total.
const (
	sourceCounters     = "counters"
	sourceLatency      = "latency_histogram"
	sourceProgramStats = "program_stats"
)

type trackerCollector struct {
	src TrackerSource
	// statsOn reports whether the kernel is counting BPF program runs.
	statsOn func() bool
	log     *slog.Logger

	errors *prometheus.CounterVec
	warned sync.Map // source -> true once a failure was logged

	entered, created, createFailed, released, exitNoEntry, nrOverflow, live, died, overwritten, stale, partial, visited *prometheus.Desc
	unrecorded, unmarked, threadWalk, overflows                                                                         *prometheus.Desc
	histEnabled, latency                                                                                                *prometheus.Desc
	statsEnabled, runs, runSeconds, recursionMisses                                                                     *prometheus.Desc
}

func newTrackerCollector(src TrackerSource, statsOn func() bool, log *slog.Logger) *trackerCollector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(prometheus.BuildFQName(Namespace, "", name), help, labels, nil)
	}
	c := &trackerCollector{
		src: src, statsOn: statsOn, log: log,
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "tracker_read_errors_total",
			Help: "Kernel reads that failed during a scrape, by source; the scrape goes on without them.",
		}, []string{"source"}),
		entered:      d("tracker_syscalls_entered_total", "Syscalls the target entered, seen by the sys_enter program."),
		created:      d("tracker_thread_entries_created_total", "Per-thread kernel entries created (a thread's first syscall since attach)."),
		createFailed: d("tracker_thread_entries_create_failures_total", "Syscall entries whose per-thread kernel entry could not be had: each leaves its thread unknown until its next recorded entry."),
		released:     d("tracker_thread_entries_released_total", "Per-thread kernel entries released when their thread exited."),
		exitNoEntry:  d("tracker_exits_without_entry_total", "Syscall exits with no recorded entry (new threads, syscalls begun before attach)."),
		nrOverflow:   d("tracker_syscall_number_overflows_total", "Syscall numbers too large for the in-flight record."),
		live:         d("tracker_thread_entries", "Per-thread kernel entries that exist now."),
		overwritten: d("tracker_entries_overwritten_total",
			"Syscall entries that found the previous syscall of their thread still recorded: its exit was missed."),
		unrecorded: d("tracker_threads_unrecorded",
			"Threads whose latest syscall entry could not be recorded: unknown, the agent is blind while any is."),
		unmarked: d("tracker_unrecorded_unmarked_total",
			"Unrecorded syscall entries that could not be pinned on their thread (its table was full): the agent stays blind."),
		stale: d("tracker_stale_records_total",
			"In-flight records that the thread's saved registers belied (a missed exit), left unjudged."),
		partial: d("tracker_partial_walks_total",
			"Passes of the task iterator that stopped before the end of the target's thread list (a thread exited under them): each was taken again, never judged."),
		visited: d("tracker_tasks_visited_total",
			"Tasks the task iterator visited, the target's or not: per poll, the target's threads where the kernel walks each of its processes alone (Linux 6.1+), every task of the host where it cannot."),
		threadWalk: d("tracker_thread_walk",
			"1 when each process of the target is walked in one visit of its leader (Linux 6.8+: no pid lookup per thread), 0 when per visit."),
		overflows: d("tracker_walk_overflows_total",
			"Walks of one process in one visit whose output did not fit the kernel's buffer (too many threads to list): each was taken again per visit."),
		died: d("tracker_thread_deaths_in_syscall_total",
			"Threads of the target that the kernel killed inside a syscall (an oops): their syscall never returns."),
		histEnabled: d("tracker_latency_enabled", "1 when the kernel measures syscall latency for stallmon_syscall_latency_seconds (--latency-histogram)."),
		latency: d("syscall_latency_seconds",
			"Latency of the target's syscalls from entry to return, measured in the kernel in 1.024 µs units (--latency-histogram).", "syscall"),
		statsEnabled: d("bpf_stats_enabled",
			"1 when the kernel counts BPF program runs and run time (sysctl kernel.bpf_stats_enabled or --bpf-stats)."),
		runs: d("bpf_program_runs_total",
			"Runs of each tracker program, for every task on the machine (the program filters others out itself); counted only while BPF stats are enabled.", "program"),
		runSeconds: d("bpf_program_run_seconds_total",
			"Time spent in each tracker program; counted only while BPF stats are enabled.", "program"),
		recursionMisses: d("bpf_program_recursion_misses_total",
			"Runs of each tracker program skipped because another BPF program was running on that CPU.", "program"),
	}
	for _, s := range []string{sourceCounters, sourceLatency, sourceProgramStats} {
		c.errors.WithLabelValues(s)
	}
	return c
}

func (c *trackerCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.entered, c.created, c.createFailed, c.released, c.exitNoEntry,
		c.nrOverflow, c.live, c.died, c.overwritten, c.stale, c.partial, c.visited, c.unrecorded, c.unmarked, c.threadWalk, c.overflows, c.histEnabled, c.latency, c.statsEnabled, c.runs, c.runSeconds, c.recursionMisses} {
		ch <- d
	}
	c.errors.Describe(ch)
}

func (c *trackerCollector) Collect(ch chan<- prometheus.Metric) {
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge := func(d *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v)
	}

	if k, err := c.src.Counters(); err != nil {
		c.failed(sourceCounters, err)
	} else {
		counter(c.entered, k.Enter)
		counter(c.created, k.StorageCreated)
		counter(c.createFailed, k.StorageFailed)
		counter(c.released, k.StorageReleased)
		counter(c.exitNoEntry, k.ExitNoEntry)
		counter(c.nrOverflow, k.NrTooLarge)
		counter(c.died, k.DiedInSyscall)
		counter(c.overwritten, k.EntryOverwritten)
		counter(c.stale, k.StaleWords)
		counter(c.partial, k.PartialWalks)
		counter(c.visited, k.TasksVisited)
		gauge(c.threadWalk, boolValue(k.ThreadWalk))
		counter(c.overflows, k.WalkOverflows)
		gauge(c.live, float64(k.Live()))
		gauge(c.unrecorded, float64(k.UnrecordedThreads))
		counter(c.unmarked, k.UnrecordedUnmarked)
	}

	gauge(c.histEnabled, boolValue(c.src.LatencyHistogramEnabled()))
	if hists, err := c.src.LatencyHistogram(); err != nil {
		c.failed(sourceLatency, err)
	} else {
		bounds := tracker.LatencyBounds()
		for _, h := range hists {
			buckets := make(map[float64]uint64, len(bounds))
			var cum uint64
			for i, b := range bounds {
				cum += h.Counts[i]
				buckets[b.Seconds()] = cum
			}
			ch <- prometheus.MustNewConstHistogram(c.latency, h.Count, h.Sum.Seconds(), buckets, h.Syscall)
		}
	}

	gauge(c.statsEnabled, boolValue(c.statsOn()))
	if progs, err := c.src.ProgramStats(); err != nil {
		c.failed(sourceProgramStats, err)
	} else {
		for _, p := range progs {
			counter(c.runs, p.RunCount, p.Program)
			ch <- prometheus.MustNewConstMetric(c.runSeconds, prometheus.CounterValue, p.Runtime.Seconds(), p.Program)
			counter(c.recursionMisses, p.RecursionMisses, p.Program)
		}
	}
	c.errors.Collect(ch)
}

// failed counts a read error, and logs the first of each source: a
// broken map would otherwise log at every scrape.
func (c *trackerCollector) failed(source string, err error) {
	c.errors.WithLabelValues(source).Inc()
	if _, seen := c.warned.LoadOrStore(source, true); !seen {
		c.log.Warn(event.MetricsReadFailed, "source", source, "err", err)
	}
}
