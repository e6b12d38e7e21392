package main

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// The shipped binary holds no test code: no workload that turns it into
// a hang generator, no test helper, no demo, no packager or doc generator.
func TestShippedBinaryHoldsNoTestCode(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	const module = "github.com/stallmon/stallmon/"
	n := 0
	for _, pkg := range strings.Fields(string(out)) {
		// make dist's packager (internal/tools/dist) is a main of its own.
		if strings.HasPrefix(pkg, "github.com/goreleaser/") || strings.HasPrefix(pkg, "github.com/spf13/cobra/doc") {
			t.Errorf("stallmon depends on %s", pkg)
		}
		if !strings.HasPrefix(pkg, module) {
			continue
		}
		n++
		for _, banned := range []string{"internal/workload", "internal/testutil/", "internal/test/", "internal/demo"} {
			if strings.HasPrefix(strings.TrimPrefix(pkg, module), banned) {
				t.Errorf("stallmon depends on %s", pkg)
			}
		}
	}
	if n < 10 {
		t.Fatalf("go list -deps named %d of stallmon's packages, want its whole chain:\n%s", n, out)
	}
}

// The arrows of docs/architecture.md point one way: what each layer may
// import of the module, checked on every package's imports (test files
// aside).
func TestArrowsPointOneWay(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", "{{.ImportPath}} {{join .Imports \" \"}}", "github.com/stallmon/stallmon/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	const module = "github.com/stallmon/stallmon/"
	// may lists, for a package prefix, the only module packages it may import.
	may := map[string][]string{
		"heartbeat":                      {},
		"peer":                           {"heartbeat", "internal/event", "internal/procgroup"},
		"internal/procgroup":             {},
		"internal/event":                 {},
		"internal/sink":                  {"internal/event"},
		"internal/integrations/":         {"internal/sink", "internal/event", "internal/procgroup"},
		"internal/tracker":               {"internal/tracker/gen", "internal/bpfiter", "internal/cgroup", "internal/fdkind", "internal/event", "internal/waitsite"},
		"internal/bpfiter":               {},
		"internal/waitsite":              {},
		"internal/doctor":                {"internal/tracker"},
		"internal/egress":                {"internal/egress/gen", "internal/cgroup", "internal/event"},
		"internal/listenq":               {"internal/listenq/gen", "internal/bpfiter"},
		"internal/budget":                {"internal/fdkind"},
		"internal/agent":                 {"heartbeat", "internal/budget", "internal/event", "internal/fdkind", "internal/listenq", "internal/nodefence", "internal/sink", "internal/tracker", "internal/waitsite"},
		"internal/identity":              {"heartbeat", "internal/cgroup", "internal/event"},
		"internal/supervise":             {"internal/agent", "internal/cgroup", "internal/event"},
		"internal/workload":              {},
		"internal/testutil/workloadtest": {"internal/workload"},
	}
	// Only these may import the pipeline, and only the demo and the tests
	// the workload.
	importers := map[string][]string{
		"internal/pipeline": {"cmd/stallmon", "internal/demo"},
		"internal/workload": {"cmd/stallmon-demo", "internal/demo", "internal/testutil/"},
	}
	checked := 0
	for line := range strings.Lines(string(out)) {
		fields := strings.Fields(line)
		pkg := strings.TrimPrefix(fields[0], module)
		for _, imp := range fields[1:] {
			if !strings.HasPrefix(imp, module) {
				continue
			}
			imp = strings.TrimPrefix(imp, module)
			checked++
			for prefix, allowed := range may {
				if strings.HasPrefix(pkg, prefix) && !slices.Contains(allowed, imp) {
					t.Errorf("%s imports %s", pkg, imp)
				}
			}
			if by, ok := importers[imp]; ok && !slices.ContainsFunc(by, func(p string) bool { return strings.HasPrefix(pkg, p) }) {
				t.Errorf("%s imports %s, which only %v may", pkg, imp, by)
			}
			if strings.HasPrefix(imp, "internal/test") && !strings.HasPrefix(pkg, "internal/test") {
				t.Errorf("%s, product code, imports the test helper %s", pkg, imp)
			}
		}
	}
	if checked < 50 {
		t.Fatalf("checked %d imports, want the module's", checked)
	}
}
