package nodefence

import (
	"strings"
	"testing"
)

// Only a watchdog passes the check that stands in for opening (arming)
// one: the host has none, so every case here is refused, each saying why.
func TestCheckWatchdogRefusesWhatIsNoWatchdog(t *testing.T) {
	for _, tc := range []struct{ path, want string }{
		{"/nonexistent/watchdog", "/nonexistent/watchdog: no such file or directory"},
		{t.TempDir(), "not a character device"},
		{"/dev/null", "/dev/null: device 1:3 is not a watchdog"},
	} {
		err := CheckWatchdog(tc.path)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("CheckWatchdog(%s) = %v, want an error with %q", tc.path, err, tc.want)
		}
	}
}
