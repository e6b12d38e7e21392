package e2e

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/stallmon/stallmon/internal/testutil/harness"
	"github.com/stallmon/stallmon/internal/testutil/privtest"
)

// The README's main command (make demo runs cmd/stallmon-demo) must keep
// telling the whole story.
func TestDemo(t *testing.T) {
	privtest.Require(t)
	demo := harness.Build(t, "github.com/stallmon/stallmon/cmd/stallmon-demo")
	out, err := exec.Command(demo).CombinedOutput()
	if err != nil {
		t.Fatalf("stallmon-demo: %v\n%s", err, out)
	}
	for _, want := range []string{
		"msg=stall ", "msg=heartbeat_stopped", "state=stalled previous=alive", `output="taking over from demo-node (stalled)"`,
		"msg=kill ", "signal=9", "state=FENCED", "==> done: the peer failed over",
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("demo output lacks %q", want)
		}
	}
	if t.Failed() {
		t.Logf("demo output:\n%s", out)
	}
}
