package metrics

import (
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/stallmon/stallmon/heartbeat"
	"github.com/stallmon/stallmon/internal/agent"
)

// AgentSource is what the agent collector reads; *agent.Agent is one.
type AgentSource interface {
	Stats() agent.Stats
}

// heartbeatStates are the packet states, lower-cased as in Stats.
var heartbeatStates = func() []string {
	var out []string
	for s := heartbeat.StateAlive; s.Valid(); s++ {
		out = append(out, strings.ToLower(s.String()))
	}
	return out
}()

type agentCollector struct {
	src          AgentSource
	pollInterval time.Duration

	info, healthy, gate, unkillable, pid       *prometheus.Desc
	tampered                                   *prometheus.Desc
	sent, sendErrors, stalls, kills            *prometheus.Desc
	sinkUp, sinkApplies, sinkFailures          *prometheus.Desc
	inFlight, oldest, stalledThread            *prometheus.Desc
	listenerQueued, listenerWaiting            *prometheus.Desc
	polls, pollFailures, latePolls, lastPoll   *prometheus.Desc
	pollDuration, pollLag, pollIntervalSeconds *prometheus.Desc
}

func newAgentCollector(src AgentSource, pollInterval time.Duration) *agentCollector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(prometheus.BuildFQName(Namespace, "", name), help, labels, nil)
	}
	return &agentCollector{
		src: src, pollInterval: pollInterval,
		info: d("agent_info",
			"Always 1; node is the heartbeat's node id (empty with --no-heartbeat).", "node"),
		healthy: d("target_healthy",
			"1 while the heartbeat may say ALIVE: the latest poll is fresh and no syscall is over its budget; 0 otherwise."),
		gate: d("gate_state",
			"The heartbeat gate: 1 for the current state (alive, stalled, blind: no fresh poll, fenced: the target is being or was killed), 0 for the others.", "state"),
		unkillable: d("target_unkillable",
			"1 once the killed target outlived --kill-grace (a thread SIGKILL cannot end), 0 otherwise."),
		pid: d("target_pid", "Process id of the watched target."),
		tampered: d("tracker_tampered",
			"1 once a BPF link of the tracker was found changed from outside (another program behind the snapshot iterator): the gate stays blind until stallmon attaches anew; 0 otherwise."),
		sent: d("heartbeats_sent_total",
			"Heartbeat packets sent, by packet state.", "state"),
		sendErrors: d("heartbeat_send_errors_total",
			"Heartbeat packets that could not be sent, by packet state.", "state"),
		sinkUp: d("sink_up",
			"1 while the latest verdict reached the sink (heartbeat, keepalived, pacemaker, etcd, systemd), 0 while it is failing and being retried.", "sink"),
		sinkApplies: d("sink_applies_total",
			"Verdicts the sink applied.", "sink"),
		sinkFailures: d("sink_failures_total",
			"Verdicts the sink failed to apply (each retry counts).", "sink"),
		stalls: d("stalls_total",
			"Syscalls that went over their budget (each stuck syscall counts once), by syscall.", "syscall"),
		kills: d("kills_total",
			"Targets killed (SIGKILL through the pidfd) because a syscall went past kill_after, by syscall.", "syscall"),
		inFlight: d("syscalls_in_flight",
			"Threads of the target inside each syscall at the latest poll.", "syscall"),
		oldest: d("syscall_in_flight_oldest_seconds",
			"How long the oldest in-flight call of each syscall had been running at the latest poll.", "syscall"),
		stalledThread: d("stalled_thread_elapsed_seconds",
			"Time in its syscall of each thread that is over budget right now; the series ends when the syscall returns.",
			"tid", "comm", "syscall", "fd_kind"),
		listenerQueued: d("listener_queued",
			"Connections waiting in the accept queues of the target's listening sockets at the latest poll, by kind (tcp, unix) and local port (the address for unix); only while the table's work_waiting rule is on.",
			"kind", "port"),
		listenerWaiting: d("listener_waiting_seconds",
			"How long connections have waited in each listener's queue with none accepted, at the latest poll (0 while it is empty or accepting), by kind and local port; only while work_waiting is on.",
			"kind", "port"),
		polls:        d("agent_polls_total", "Successful polls of the tracker."),
		pollFailures: d("agent_poll_failures_total", "Polls whose snapshot failed (the gate goes blind)."),
		latePolls: d("agent_late_polls_total",
			"Polls that started more than two poll intervals after the previous one: the agent itself was starved."),
		lastPoll: d("agent_last_poll_timestamp_seconds", "Unix time of the latest successful poll."),
		pollDuration: d("agent_poll_duration_seconds",
			"Time to take and judge one snapshot."),
		pollLag: d("agent_poll_lag_seconds",
			"How much later than its interval each poll started: the agent's own scheduling delay."),
		pollIntervalSeconds: d("agent_poll_interval_seconds", "The configured --poll-interval."),
	}
}

func (c *agentCollector) Describe(ch chan<- *prometheus.Desc) { prometheus.DescribeByCollect(c, ch) }

func (c *agentCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.src.Stats()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}

	gauge(c.info, 1, st.NodeID)
	gauge(c.healthy, boolValue(st.Gate == "alive"))
	for _, s := range agent.GateStates() {
		gauge(c.gate, boolValue(st.Gate == s), s)
	}
	gauge(c.unkillable, boolValue(st.Unkillable))
	gauge(c.tampered, boolValue(st.Tampered))
	gauge(c.pid, float64(st.PID))
	// Every state is always present so that rate() and dashboards see a
	// zero rather than no data before the first packet of a kind.
	for _, s := range heartbeatStates {
		counter(c.sent, st.HeartbeatsSent[s], s)
		counter(c.sendErrors, st.HeartbeatSendErrors[s], s)
	}
	for _, s := range st.Sinks {
		gauge(c.sinkUp, boolValue(s.OK), s.Name)
		counter(c.sinkApplies, s.Applied, s.Name)
		counter(c.sinkFailures, s.Failures, s.Name)
	}
	for sc, n := range st.Stalls {
		counter(c.stalls, n, sc)
	}
	for sc, n := range st.Kills {
		counter(c.kills, n, sc)
	}
	for _, f := range st.InFlight {
		gauge(c.inFlight, float64(f.Threads), f.Syscall)
		gauge(c.oldest, f.Oldest.Seconds(), f.Syscall)
	}
	for _, s := range st.Stalled {
		gauge(c.stalledThread, s.Elapsed.Seconds(), strconv.Itoa(s.TID), s.Comm, s.Syscall, s.FDKind)
	}
	c.collectListeners(ch, st.Listeners)
	counter(c.polls, st.Polls)
	counter(c.pollFailures, st.PollFailures)
	counter(c.latePolls, st.LatePolls)
	if !st.LastPoll.IsZero() {
		gauge(c.lastPoll, float64(st.LastPoll.UnixNano())/1e9)
	}
	ch <- constHistogram(c.pollDuration, st.PollDuration)
	ch <- constHistogram(c.pollLag, st.PollLag)
	gauge(c.pollIntervalSeconds, c.pollInterval.Seconds())
}

// constHistogram turns the agent's per-bucket counts into Prometheus'
// cumulative buckets.
func constHistogram(d *prometheus.Desc, h agent.Histogram, labels ...string) prometheus.Metric {
	buckets := make(map[float64]uint64, len(h.Bounds))
	var cum uint64
	for i, b := range h.Bounds {
		cum += h.Counts[i]
		buckets[b.Seconds()] = cum
	}
	return prometheus.MustNewConstHistogram(d, h.Count, h.Sum.Seconds(), buckets, labels...)
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// collectListeners emits one series per kind and port: sockets on one
// port (IPv4 and IPv6, or SO_REUSEPORT) add their queues up and show the
// longest wait.
func (c *agentCollector) collectListeners(ch chan<- prometheus.Metric, ls []agent.ListenerQueue) {
	type key struct{ kind, port string }
	queued := map[key]uint32{}
	waiting := map[key]time.Duration{}
	var order []key
	for _, l := range ls {
		k := key{l.Kind, l.Label}
		if _, seen := queued[k]; !seen {
			order = append(order, k)
		}
		queued[k] += l.Queued
		waiting[k] = max(waiting[k], l.Waiting)
	}
	for _, k := range order {
		ch <- prometheus.MustNewConstMetric(c.listenerQueued, prometheus.GaugeValue, float64(queued[k]), k.kind, k.port)
		ch <- prometheus.MustNewConstMetric(c.listenerWaiting, prometheus.GaugeValue, waiting[k].Seconds(), k.kind, k.port)
	}
}
