package metrics

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/stallmon/stallmon/peer"
)

// ListenerSource is what the listener collector reads; *peer.Listener is
// one.
type ListenerSource interface {
	Stats() peer.Stats
	Nodes() []peer.NodeStatus
}

// nodeStates are the states a heard node can be in (Unknown is never
// reported for a node that was heard).
var nodeStates = []peer.State{peer.Alive, peer.Stalled, peer.Fenced, peer.Dead, peer.Left}

// Failovers counts the failovers in a listener's events. The listener
// keeps no count of its own; it hands every event to its OnEvent.
type Failovers struct {
	mu sync.Mutex
	n  map[[2]string]uint64 // node, reason
}

// NewFailovers returns an empty count.
func NewFailovers() *Failovers { return &Failovers{n: map[[2]string]uint64{}} }

// Observe counts ev if it is a failover. It is safe to call from the
// listener's goroutine while a scrape runs.
func (f *Failovers) Observe(ev peer.Event) {
	if !ev.Failover {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.n[[2]string{ev.Node, ev.Reason}]++
}

// Tap returns an OnEvent function that counts failovers, then calls next.
func (f *Failovers) Tap(next func(peer.Event)) func(peer.Event) {
	return func(ev peer.Event) {
		f.Observe(ev)
		next(ev)
	}
}

func (f *Failovers) each(fn func(node, reason string, n uint64)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for k, n := range f.n {
		fn(k[0], k[1], n)
	}
}

// ListenerCollector exports a listener's view of its peers.
type ListenerCollector struct {
	src       ListenerSource
	failovers *Failovers
	now       func() time.Time

	state, age, authenticated, accepted, rejected, failoverDesc *prometheus.Desc
}

// NewListenerCollector returns a collector reading src and failovers at
// scrape time.
func NewListenerCollector(src ListenerSource, failovers *Failovers) *ListenerCollector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(prometheus.BuildFQName(Namespace, "listener", name), help, labels, nil)
	}
	return &ListenerCollector{
		src: src, failovers: failovers, now: time.Now,
		state: d("node_state",
			"Each heard node's state: 1 for the current one (alive, stalled, fenced, dead: silent past --timeout, left), 0 for the others.", "node", "state"),
		age: d("node_last_packet_age_seconds",
			"Time since the node's latest valid heartbeat.", "node"),
		authenticated: d("node_authenticated",
			"1 when the node's latest heartbeat carried a valid MAC.", "node"),
		accepted: d("packets_accepted_total", "Heartbeat packets accepted."),
		rejected: d("packets_rejected_total",
			"Heartbeat packets dropped, by reason (bad MAC, replay, truncated, ...).", "reason"),
		failoverDesc: d("failovers_total",
			"Failovers seen: transitions of a node from alive to stalled, fenced or dead, by node and reason.", "node", "reason"),
	}
}

// Describe implements prometheus.Collector.
func (c *ListenerCollector) Describe(ch chan<- *prometheus.Desc) {
	prometheus.DescribeByCollect(c, ch)
}

// Collect implements prometheus.Collector.
func (c *ListenerCollector) Collect(ch chan<- prometheus.Metric) {
	now := c.now()
	for _, n := range c.src.Nodes() {
		for _, s := range nodeStates {
			ch <- prometheus.MustNewConstMetric(c.state, prometheus.GaugeValue, boolValue(n.State == s), n.Node, s.String())
		}
		ch <- prometheus.MustNewConstMetric(c.age, prometheus.GaugeValue, max(now.Sub(n.LastSeen), 0).Seconds(), n.Node)
		ch <- prometheus.MustNewConstMetric(c.authenticated, prometheus.GaugeValue, boolValue(n.Authenticated), n.Node)
	}
	st := c.src.Stats()
	ch <- prometheus.MustNewConstMetric(c.accepted, prometheus.CounterValue, float64(st.Accepted))
	for _, r := range peer.RejectReasons() {
		ch <- prometheus.MustNewConstMetric(c.rejected, prometheus.CounterValue, float64(st.Rejected[r]), r)
	}
	c.failovers.each(func(node, reason string, n uint64) {
		ch <- prometheus.MustNewConstMetric(c.failoverDesc, prometheus.CounterValue, float64(n), node, reason)
	})
}
