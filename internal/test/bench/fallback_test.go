package bench

import (
	"strings"
	"testing"
)

func TestCompareFallback(t *testing.T) {
	tr := Tracker{Name: "tracepoint", Minimal: true}
	pc := PollCase{Threads: 1000}
	tab := &Table{}
	none := tab.Add(&Row{Key: FallbackKey(KeyNoTracker), Samples: []float64{100, 101, 100}})
	tab.Add(&Row{Key: FallbackKey(KeyFloor), Samples: []float64{150, 150, 150}, Base: none})
	for _, scope := range []string{ScopeSelf, ScopeOther} {
		full := tab.Add(&Row{Key: FallbackKey(GetppidKey(tr.Name, scope)), Samples: []float64{180, 180, 180}, Base: none})
		minimal := []float64{230, 230, 230}
		if scope == ScopeOther {
			minimal = []float64{170, 190, 200} // faster in one round
		}
		tab.Add(&Row{Key: MinimalGetppidKey(tr.Name, scope), Samples: minimal, Base: full})
	}
	got := CompareFallback(tab, []Tracker{tr, {Name: "sampled"}}, []PollCase{pc})
	want := []string{
		"stallmon (tracepoint) on this process: minimal object +80 ns/call over the empty-program floor (+130 over no tracker), full object +30 (+80); the minimal object slower in 3 of 3 interleaved rounds",
		"stallmon (tracepoint) on another process: minimal object +40 ns/call over the empty-program floor (+90 over no tracker), full object +30 (+80); the minimal object slower in 2 of 3 interleaved rounds",
		"stallmon (tracepoint), 1,000 threads (1 busy), made after attach: not measured in this run",
	}
	if len(got) != len(want) {
		t.Fatalf("%d lines, want %d (none for a tracker that cannot load the minimal object): %q", len(got), len(want), got)
	}
	for i := range want {
		if !strings.Contains(got[i], want[i]) {
			t.Errorf("line %d:\n%s\nwant it to contain\n%s", i, got[i], want[i])
		}
	}

	minimal := pc
	minimal.Minimal = true
	for k, v := range map[string]float64{PollTime: 2, PollCPU: 1} {
		full := tab.Add(&Row{Key: FallbackKey(PollKey(tr.Name, k, pc)), Samples: []float64{v}})
		tab.Add(&Row{Key: FallbackKey(PollKey(tr.Name, k, minimal)), Samples: []float64{3 * v}, Base: full})
	}
	got = CompareFallback(tab, []Tracker{tr}, []PollCase{pc})
	if w := "poll 6.00 ms with the minimal object, 2.00 ms with the full one (3.00x); agent 3.00% of a core, 1.00%"; !strings.HasSuffix(got[2], w) {
		t.Errorf("poll line %q, want it to end %q", got[2], w)
	}
}

// A minimal poll case differs from the full one in its key, label and
// flags, so that both can sit in one table and the agent loads the
// object the row says.
func TestPollCaseMinimal(t *testing.T) {
	full := PollCase{Threads: 1000, Bounded: true}
	minimal := full
	minimal.Minimal = true
	if PollKey("tracepoint", PollTime, full) == PollKey("tracepoint", PollTime, minimal) {
		t.Error("the minimal case has the full case's key")
	}
	if !strings.HasSuffix(minimal.String(), ", minimal BPF object") || strings.Contains(full.String(), "minimal") {
		t.Errorf("labels %q and %q", full, minimal)
	}
	args := strings.Join(minimal.AgentArgs(), " ")
	if args != "--budget "+BoundedBudget+" --kill-after "+boundedKillAfter+" --bpf-features=minimal" {
		t.Errorf("minimal bounded case's flags: %q", args)
	}
	if strings.Contains(strings.Join(full.AgentArgs(), " "), "bpf-features") {
		t.Errorf("full case's flags: %q", full.AgentArgs())
	}
}
