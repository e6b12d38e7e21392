package bench

import (
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stallmon/stallmon/internal/cgroup"
	"github.com/stallmon/stallmon/internal/testutil/cgrouptest"
	"github.com/stallmon/stallmon/internal/testutil/ctarget"
	"github.com/stallmon/stallmon/internal/testutil/harness"
)

// server runs one Service for the service rows.
type server struct {
	Service
	// tools it needs on the PATH.
	tools []string
	// start runs the server in cgroup cg, pinned to cpu (-1: not
	// pinned), until the test ends, and returns once it answers.
	start func(t *testing.T, cg cgroup.Dir, cpu int)
	// load runs its client once, pinned to cpu, and returns the requests
	// the server answered and the client's rate (requests a second).
	load func(cpu int) (requests int, rate float64, err error)
}

// servers are the servers of Services, sized by c.
func (c config) servers() []*server {
	byID := map[string]func(Service) *server{
		"redis":     func(s Service) *server { return redisServer(s, c.redisRequests, false) },
		"redis-aof": func(s Service) *server { return redisServer(s, c.aofRequests, true) },
		"nginx":     func(s Service) *server { return nginxServer(s, c.nginxRequests) },
	}
	var out []*server
	for _, s := range Services {
		out = append(out, byID[s.ID](s))
	}
	return out
}

// runServices loads each server of cfg with its client, with no tracker
// and with `stallmon attach --cgroup` on the server's cgroup and on
// another service's, interleaved in rounds. Each load gives two figures:
// the server's CPU time per request, from the cpu.stat of a cgroup it
// runs in alone (CPU time does not grow when other processes take the
// CPU from the server, as throughput shrinks), and its throughput with
// the server, its client and the agent pinned (Layout). It returns the
// layout, for the table's header.
func runServices(t *testing.T, cfg config, tab *Table) Layout {
	cpus, err := AllowedCPUs()
	if err != nil {
		t.Fatal(err)
	}
	layout := NewLayout(cpus)
	c := harness.NewCluster(t)
	// One cgroup per server, and one for the other service, under one of
	// the test's, which its cleanup removes with whatever is left in it.
	parent := cgrouptest.New(t)
	otherCg, err := cgroup.Mkdir(parent.Path, "other")
	if err != nil {
		t.Fatal(err)
	}
	other := startProtocol(t, ctarget.Build(t, "idlethreads"))
	if err := otherCg.Add(other.PID); err != nil {
		t.Fatal(err)
	}
	type running struct {
		*server
		cg    cgroup.Dir
		cases []ServiceCase
	}
	var servers []running
	for _, s := range cfg.servers() {
		cases := AddServiceRows(tab, s.Service, Trackers)
		if missing := missingTools(s.tools); missing != "" {
			if cfg.needTools {
				t.Fatalf("%s: %s (make bench installs it)", s.ID, missing)
			}
			for _, sc := range cases {
				for _, r := range sc.Rows {
					r.Missing = missing
				}
			}
			for _, m := range serviceMeasures {
				tab.Row(ServiceSpreadKey(s.ID, m.Measure)).Missing = missing
			}
			t.Logf("%s: no figures: %s", s.ID, missing)
			continue
		}
		cg, err := cgroup.Mkdir(parent.Path, s.ID)
		if err != nil {
			t.Fatal(err)
		}
		s.start(t, cg, layout.cpuOf(layout.Server))
		// A first load, not counted, so that no case pays for the
		// server's first allocations and page faults.
		if _, _, err := s.load(layout.cpuOf(layout.Client)); err != nil {
			t.Fatalf("%s, warming up: %v", s.ID, err)
		}
		servers = append(servers, running{server: s, cg: cg, cases: cases})
	}
	for round := range cfg.rounds {
		for _, s := range servers {
			// Each round starts at another case, so that whatever the
			// case before leaves behind (the previous server's load, an
			// agent just gone) falls on every case in turn.
			for i := range s.cases {
				sc := s.cases[(round+i)%len(s.cases)]
				var agent *harness.Proc
				if sc.Tracker != nil {
					target := s.cg.Path
					if sc.Scope == ServiceOther {
						target = otherCg.Path
					}
					err := startPinned(layout.cpuOf(layout.Agent), func() error {
						agent = startAgent(t, *sc.Tracker, c, fmt.Sprintf("bench-%s-%d", s.ID, round), "--cgroup", target)
						return nil
					})
					if err != nil || t.Failed() {
						t.Fatalf("%s, %s: starting stallmon: %v", s.ID, sc.Label(), err)
					}
				}
				cpu, rate, err := loadOnce(s.server, s.cg, layout)
				if agent != nil {
					stopAgent(t, agent)
				}
				if err != nil {
					t.Fatalf("round %d, %s, %s: %v", round+1, s.ID, sc.Label(), err)
				}
				sc.Rows[0].Samples = append(sc.Rows[0].Samples, cpu)
				sc.Rows[1].Samples = append(sc.Rows[1].Samples, rate)
				t.Logf("round %d, %s, %s: %s µs/req, %s req/s", round+1, s.ID, sc.Label(), Format(cpu), Format(rate))
			}
		}
		t.Logf("service round %d of %d done", round+1, cfg.rounds)
	}
	return layout
}

// loadOnce runs s's client once and returns the server's CPU time per
// request in µs, from its cgroup, and the client's rate.
func loadOnce(s *server, cg cgroup.Dir, layout Layout) (cpuPerReq, rate float64, err error) {
	before, err := cgroupCPU(cg.Path)
	if err != nil {
		return 0, 0, err
	}
	n, rate, err := s.load(layout.cpuOf(layout.Client))
	if err != nil {
		return 0, 0, err
	}
	after, err := cgroupCPU(cg.Path)
	if err != nil {
		return 0, 0, err
	}
	if n <= 0 {
		return 0, 0, fmt.Errorf("the client answered %d requests", n)
	}
	return float64(after-before) / float64(time.Microsecond) / float64(n), rate, nil
}

// missingTools names the tools not on the PATH, or "".
func missingTools(tools []string) string {
	var missing []string
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, tool)
		}
	}
	if len(missing) == 0 {
		return ""
	}
	return strings.Join(missing, ", ") + " not installed"
}

// runPinned runs cmd to its end with it pinned to cpu (-1: not pinned)
// and returns its standard output; a failure carries its standard error.
func runPinned(cmd *exec.Cmd, cpu int) ([]byte, error) {
	var out, errOut strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := startPinned(cpu, cmd.Start); err != nil {
		return nil, fmt.Errorf("%s: %w", cmd.Args[0], err)
	}
	if err := cmd.Wait(); err != nil {
		return nil, fmt.Errorf("%s: %w: %s", cmd.Args[0], err, strings.TrimSpace(errOut.String()))
	}
	return []byte(out.String()), nil
}
