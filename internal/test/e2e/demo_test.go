package e2e

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/stallmon/stallmon/internal/testutil/harness"
	"github.com/stallmon/stallmon/internal/testutil/privtest"
)

// The README's main command (make demo runs cmd/stallmon-demo) must keep
// telling the whole story, in its order: the service's own heartbeat
// heard through the gate, the stall closing the gate, the service's own
// peer taking over before the kill, stallmon's peer failing over, the kill.
func TestDemo(t *testing.T) {
	privtest.Require(t)
	demo := harness.Build(t, "github.com/stallmon/stallmon/cmd/stallmon-demo")
	out, err := exec.Command(demo).CombinedOutput()
	if err != nil {
		t.Fatalf("stallmon-demo: %v\n%s", err, out)
	}
	at := 0
	for _, want := range []string{
		"msg=egress_attached ", "msg=egress_opened ", "own peer: hears the service's own heartbeat",
		"msg=stall ", "msg=egress_closed component=agent dest=udp:239.255.77.77:", "reason=stalled",
		"own peer: the service's own heartbeat stopped: taking over",
		"msg=kill ", "signal=9", "state=FENCED", "==> done: the service's own peer took over", "msg=egress_released ",
	} {
		i := strings.Index(string(out[at:]), want)
		if i < 0 {
			t.Errorf("demo output lacks %q after byte %d", want, at)
			continue
		}
		at += i + len(want)
	}
	for _, want := range []string{"msg=heartbeat_stopped", "state=stalled previous=alive", `output="taking over from demo-node (stalled)"`} {
		if !strings.Contains(string(out), want) {
			t.Errorf("demo output lacks %q", want)
		}
	}
	if strings.Contains(string(out), "own peer: hears the service's own heartbeat again") {
		t.Error("the service's own heartbeat was heard again after its peer took over")
	}
	if t.Failed() {
		t.Logf("demo output:\n%s", out)
	}
}
