package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/stallmon/stallmon/internal/egress"
)

// EgressSource is what the egress collector reads: the gate of
// --gate-egress.
type EgressSource interface {
	Stats() (egress.Stats, error)
}

// egressCollector reads the gate's state and counters from the kernel
// at scrape time.
type egressCollector struct {
	src     EgressSource
	open    *prometheus.Desc
	dropped *prometheus.Desc
	scans   *prometheus.Desc
	errors  prometheus.Counter
}

func newEgressCollector(src EgressSource) *egressCollector {
	return &egressCollector{
		src: src,
		open: prometheus.NewDesc(prometheus.BuildFQName(Namespace, "", "egress_gate_open"),
			"--gate-egress: 1 while the kernel lets the service's packets to its gated destinations through (the agent vouched for it, and the deadline it set lies ahead), 0 while they are dropped.", nil, nil),
		dropped: prometheus.NewDesc(prometheus.BuildFQName(Namespace, "", "egress_dropped_packets_total"),
			"--gate-egress: the service's packets to dest dropped in the kernel since stallmon attached the gate.", []string{"dest"}, nil),
		scans: prometheus.NewDesc(prometheus.BuildFQName(Namespace, "", "egress_scan_failures_total"),
			"--gate-egress with --pid/--tree: rescans of the service's file tables that could not enter every socket (a socket left out passes the shut gate; egress_scan_failed says why).", nil, nil),
		errors: prometheus.NewCounter(prometheus.CounterOpts{Namespace: Namespace, Name: "egress_read_errors_total",
			Help: "--gate-egress: scrapes that could not read the gate's state from the kernel."}),
	}
}

func (c *egressCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.open
	ch <- c.dropped
	ch <- c.scans
	c.errors.Describe(ch)
}

func (c *egressCollector) Collect(ch chan<- prometheus.Metric) {
	defer c.errors.Collect(ch)
	st, err := c.src.Stats()
	if err != nil {
		c.errors.Inc()
		return
	}
	open := 0.0
	if st.Open {
		open = 1
	}
	ch <- prometheus.MustNewConstMetric(c.open, prometheus.GaugeValue, open)
	ch <- prometheus.MustNewConstMetric(c.scans, prometheus.CounterValue, float64(st.ScanFailures))
	for _, d := range st.Dropped {
		ch <- prometheus.MustNewConstMetric(c.dropped, prometheus.CounterValue, float64(d.Packets), d.Dest)
	}
}
