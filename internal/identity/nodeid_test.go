package identity

import (
	"strings"
	"testing"

	"github.com/stallmon/stallmon/heartbeat"
)

func TestServiceUnit(t *testing.T) {
	for in, want := range map[string]string{
		"0::/system.slice/nginx.service\n":                          "nginx.service",
		"0::/system.slice/postgresql@15-main.service/extra\n":       "postgresql@15-main.service",
		"12:pids:/x\n0::/user.slice/user-0.slice/session-3.scope\n": "",
		"0::/\n": "",
		"1:name=systemd:/system.slice/a.service\n": "",
	} {
		if got := ServiceUnit(in); got != want {
			t.Errorf("ServiceUnit(%q) = %q, want %q", in, got, want)
		}
	}
}

// A default node id too long for the wire keeps its head and a hash of
// the whole, so that two long ids differing at the end stay apart.
func TestDefaultNodeIDFitsTheWire(t *testing.T) {
	short := "host/nginx.service"
	if got := DefaultNodeID("host", "nginx.service"); got != short {
		t.Errorf("DefaultNodeID = %q, want %q", got, short)
	}
	a := DefaultNodeID("ip-10-20-30-40.eu-west-1.compute.internal", "system.slice/postgresql@15-main.service")
	b := DefaultNodeID("ip-10-20-30-40.eu-west-1.compute.internal", "system.slice/postgresql@16-main.service")
	for _, id := range []string{a, b} {
		if err := heartbeat.CheckNodeID(id); err != nil || !strings.HasPrefix(id, "ip-10-20-30-40.eu-west-1") {
			t.Errorf("shortened id %q: %v", id, err)
		}
	}
	if a == b {
		t.Errorf("two long ids shortened to the same %q", a)
	}
}
