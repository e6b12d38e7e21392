package dashboards

import (
	"os/exec"
	"testing"

	"github.com/stallmon/stallmon/internal/testutil/privtest"
	"github.com/stallmon/stallmon/internal/testutil/repo"
)

// promtool checks the rules' syntax and runs their unit tests
// (prometheus/stallmon-rules_test.yml), and checks the example scrape
// configuration that loads them.
func TestAlertRules(t *testing.T) {
	promtool := privtest.RequireCommand(t, "promtool")
	for _, args := range [][]string{
		{"check", "rules", "stallmon-rules.yml"},
		{"test", "rules", "stallmon-rules_test.yml"},
		{"check", "config", "prometheus.example.yml"},
	} {
		cmd := exec.Command(promtool, args...)
		cmd.Dir = repo.Path(t, "deploy/prometheus")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("promtool %v: %v\n%s", args, err, out)
		}
	}
}
