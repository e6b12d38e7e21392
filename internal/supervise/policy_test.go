package supervise

import (
	"syscall"
	"testing"
	"time"
)

func TestBackoffDoublesUpTo32Times(t *testing.T) {
	want := []time.Duration{1, 2, 4, 8, 16, 32, 32, 32}
	for i, w := range want {
		if got := backoff(time.Second, i+1); got != w*time.Second {
			t.Errorf("restart %d in a row: delay %v, want %v", i+1, got, w*time.Second)
		}
	}
}

func TestParsePolicy(t *testing.T) {
	for _, p := range []Policy{Never, OnFailure, Always} {
		got, err := ParsePolicy(p.String())
		if err != nil || got != p {
			t.Errorf("ParsePolicy(%q) = %v, %v", p.String(), got, err)
		}
	}
	if _, err := ParsePolicy("sometimes"); err == nil {
		t.Error("ParsePolicy accepted sometimes")
	}
}

func TestStatusExitCode(t *testing.T) {
	for _, c := range []struct {
		st     Status
		code   int
		failed bool
	}{
		{Status{}, 0, false},
		{Status{Code: 3}, 3, true},
		{Status{Signal: syscall.SIGKILL}, 137, true},
		{Status{Signal: syscall.SIGTERM}, 143, true},
	} {
		if c.st.ExitCode() != c.code || c.st.Failed() != c.failed {
			t.Errorf("%v: exit code %d failed %v, want %d %v", c.st, c.st.ExitCode(), c.st.Failed(), c.code, c.failed)
		}
	}
}
