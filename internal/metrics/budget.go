package metrics

import (
	"slices"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/stallmon/stallmon/internal/budget"
	"github.com/stallmon/stallmon/internal/fdkind"
)

// budgetCollector exports the timeout table so that dashboards can draw
// each syscall's budget and kill_after next to its time in flight.
// Unbounded rules have no series: they never stall.
type budgetCollector struct {
	table *budget.Table
	// inFlight names the syscalls in flight now, which get a series even
	// when the table does not list them (they follow the default rule).
	inFlight func() []string

	budget, killAfter           *prometheus.Desc
	stateBudget, stateKillAfter *prometheus.Desc
}

func newBudgetCollector(table *budget.Table, inFlight func() []string) *budgetCollector {
	d := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc(prometheus.BuildFQName(Namespace, "", name), help, []string{"syscall", "fd_kind"}, nil)
	}
	return &budgetCollector{
		table: table, inFlight: inFlight,
		budget: d("syscall_budget_seconds",
			"How long a syscall may run before the heartbeat stops, for each syscall the table lists or that is in flight; fd_kind is set for rules that depend on the kind of fd (empty: the syscall's own rule)."),
		killAfter: d("syscall_kill_after_seconds",
			"How long a syscall may run before the target is killed, for the same syscalls as stallmon_syscall_budget_seconds; no series when the rule never kills."),
		stateBudget: prometheus.NewDesc(prometheus.BuildFQName(Namespace, "", "state_budget_seconds"),
			"How long a thread (uninterruptible, running, page_fault) or the process (stopped, traced, frozen, dumping_core, exiting) may stay in a state before the heartbeat stops: the table's state rules, before per-syscall overrides.", []string{"state"}, nil),
		stateKillAfter: prometheus.NewDesc(prometheus.BuildFQName(Namespace, "", "state_kill_after_seconds"),
			"How long a thread or the process may stay in a state before the target is killed; no series when the rule never kills.", []string{"state"}, nil),
	}
}

func (c *budgetCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.budget
	ch <- c.killAfter
	ch <- c.stateBudget
	ch <- c.stateKillAfter
}

func (c *budgetCollector) Collect(ch chan<- prometheus.Metric) {
	names := c.table.Names()
	for _, n := range c.inFlight() {
		if _, found := slices.BinarySearch(names, n); !found {
			names = append(names, n)
			slices.Sort(names)
		}
	}
	emit := func(r budget.Rule, syscall, kind string) {
		if r.Unbounded {
			return
		}
		ch <- prometheus.MustNewConstMetric(c.budget, prometheus.GaugeValue, r.Budget.Seconds(), syscall, kind)
		if r.Kills() {
			ch <- prometheus.MustNewConstMetric(c.killAfter, prometheus.GaugeValue, r.KillAfter.Seconds(), syscall, kind)
		}
	}
	for _, st := range budget.States() {
		r := c.table.ProcessRule(st)
		if r.Unbounded {
			continue
		}
		ch <- prometheus.MustNewConstMetric(c.stateBudget, prometheus.GaugeValue, r.Budget.Seconds(), st.String())
		if r.Kills() {
			ch <- prometheus.MustNewConstMetric(c.stateKillAfter, prometheus.GaugeValue, r.KillAfter.Seconds(), st.String())
		}
	}
	for _, name := range names {
		own := c.table.Lookup(name, fdkind.None)
		emit(own, name, "")
		if !c.table.NeedsFDKind(name) {
			continue
		}
		for _, k := range fdkind.Kinds() {
			if r := c.table.Lookup(name, k); k != fdkind.None && r != own {
				emit(r, name, k.String())
			}
		}
	}
}
