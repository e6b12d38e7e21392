package metrics

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// The gate's state and counters as read; a failed read exports neither
// (no stale "open") and counts the failure.
func TestEgressCollector(t *testing.T) {
	want := `
# HELP stallmon_egress_dropped_packets_total --gate-egress: the service's packets to dest dropped in the kernel since stallmon attached the gate.
# TYPE stallmon_egress_dropped_packets_total counter
stallmon_egress_dropped_packets_total{dest="udp:239.1.2.3:5000"} 0
# HELP stallmon_egress_gate_open --gate-egress: 1 while the kernel lets the service's packets to its gated destinations through (the agent vouched for it, and the deadline it set lies ahead), 0 while they are dropped.
# TYPE stallmon_egress_gate_open gauge
stallmon_egress_gate_open 1
# HELP stallmon_egress_read_errors_total --gate-egress: scrapes that could not read the gate's state from the kernel.
# TYPE stallmon_egress_read_errors_total counter
stallmon_egress_read_errors_total 0
# HELP stallmon_egress_scan_failures_total --gate-egress with --pid/--tree: rescans of the service's file tables that could not enter every socket (a socket left out passes the shut gate; egress_scan_failed says why).
# TYPE stallmon_egress_scan_failures_total counter
stallmon_egress_scan_failures_total 2
`
	if err := testutil.CollectAndCompare(newEgressCollector(fakeEgress{}), strings.NewReader(want)); err != nil {
		t.Error(err)
	}
	failing := `
# HELP stallmon_egress_read_errors_total --gate-egress: scrapes that could not read the gate's state from the kernel.
# TYPE stallmon_egress_read_errors_total counter
stallmon_egress_read_errors_total 1
`
	if err := testutil.CollectAndCompare(newEgressCollector(failingEgress{}), strings.NewReader(failing)); err != nil {
		t.Error(err)
	}
}
