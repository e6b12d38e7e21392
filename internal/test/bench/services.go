package bench

import (
	"fmt"
	"strings"
)

// Service is a server of the service rows, as the table names it.
type Service struct {
	ID    string // in row keys
	Bench string // what one request is, and who asks it
}

// Services are the servers the service rows load, in order.
var Services = []Service{
	{ID: "redis", Bench: "redis SET+GET in memory (redis-benchmark, 50 clients)"},
	{ID: "nginx", Bench: "nginx, a 4 KiB static file, keep-alive (ab -k, 50 clients)"},
	{ID: "redis-aof", Bench: "redis SET, AOF appendfsync always on tmpfs (redis-benchmark, 50 clients)"},
}

// serviceMeasures are the two benches of each service, in order.
var serviceMeasures = [2]struct {
	Measure, Bench string
	Unit           Unit
}{{ServiceCPU, "server CPU per request", MicrosReq}, {ServiceRate, "throughput, pinned", ReqPerSec}}

// SpreadCase is the case of the row that states the spread of no
// tracker's rounds.
const SpreadCase = "no tracker: spread of its rounds (max - min), the noise the rows below are judged by"

// ServiceRows are the rows of one case of a service, by measure
// (serviceMeasures).
type ServiceRows [2]*Row

// ServiceCase is one case of the service rows: a tracker watching the
// server's cgroup or another service's, or (Tracker nil) none.
type ServiceCase struct {
	Tracker *Tracker
	Scope   string // ServiceSelf or ServiceOther
	Rows    ServiceRows
}

// AddServiceRows adds the rows of service s to t: for each measure, the
// baseline with no tracker, the spread of its rounds, and each tracker
// attached to the server's cgroup and to another service's, each compared
// with the baseline and said to be within noise unless the difference
// exceeds that spread. It returns the cases, the baseline first.
func AddServiceRows(t *Table, s Service, trackers []Tracker) []ServiceCase {
	cases := []ServiceCase{{}}
	for i := range trackers {
		for _, scope := range []string{ServiceSelf, ServiceOther} {
			cases = append(cases, ServiceCase{Tracker: &trackers[i], Scope: scope})
		}
	}
	for k, m := range serviceMeasures {
		bench := s.Bench + ": " + m.Bench
		none := t.Add(&Row{Key: ServiceKey(s.ID, m.Measure, "", ""), Bench: bench, Case: "no tracker", Unit: m.Unit})
		cases[0].Rows[k] = none
		t.Add(&Row{Key: ServiceSpreadKey(s.ID, m.Measure), Bench: bench, Unit: m.Unit, SpreadOf: none,
			Case: SpreadCase})
		for i := range cases[1:] {
			c := &cases[i+1]
			c.Rows[k] = t.Add(&Row{Key: ServiceKey(s.ID, m.Measure, c.Tracker.Name, c.Scope), Bench: bench, Unit: m.Unit,
				Base: none, Noise: true, Case: c.Label()})
		}
	}
	return cases
}

// Label is the case as the table shows it.
func (c ServiceCase) Label() string {
	if c.Tracker == nil {
		return "no tracker"
	}
	where := "the server's cgroup"
	if c.Scope == ServiceOther {
		where = "another service's cgroup"
	}
	return fmt.Sprintf("stallmon (%s) attach --cgroup on %s", c.Tracker.Name, where)
}

// JudgeServices says, per tracker and scope, which service figures
// differ from no tracker's by more than the spread of no tracker's own
// rounds, and by how much, in % of no tracker's figure.
func JudgeServices(t *Table, trackers []Tracker) []string {
	var out []string
	for _, tr := range trackers {
		for _, scope := range []string{ServiceSelf, ServiceOther} {
			var measures []string
			for _, m := range serviceMeasures {
				var parts []string
				for _, s := range Services {
					parts = append(parts, s.ID+" "+judgeService(t.Row(ServiceKey(s.ID, m.Measure, tr.Name, scope))))
				}
				measures = append(measures, m.Bench+": "+strings.Join(parts, ", "))
			}
			out = append(out, fmt.Sprintf("Services, %s: %s.", ServiceCase{Tracker: &tr, Scope: scope}.Label(), strings.Join(measures, "; ")))
		}
	}
	return out
}

func judgeService(r *Row) string {
	if r == nil || !measured(r, r.Base) {
		return "not measured"
	}
	base := r.Base.Figure()
	d := 100 * (r.Figure() - base) / base
	spread := 100 * Spread(r.Base.Samples) / base
	if r.WithinNoise() {
		return fmt.Sprintf("within noise (%+.1f%%, spread %.1f%%)", d, spread)
	}
	return fmt.Sprintf("%+.1f%% (spread %.1f%%)", d, spread)
}
