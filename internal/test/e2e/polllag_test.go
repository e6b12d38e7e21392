package e2e

import (
	"regexp"
	"strconv"
	"testing"
	"time"
)

var pollLagSum = regexp.MustCompile(`(?m)^stallmon_agent_poll_lag_seconds_sum (\S+)$`)

// pollLag is how late, in all, the polls of the agent serving /metrics on
// addr started (stallmon_agent_poll_lag_seconds): the agent's own
// scheduling delay. A detection bound in polls holds for polls that come
// on time; the lag between two scrapes is what the agent was kept from
// them, on a loaded machine.
func pollLag(t *testing.T, addr string) time.Duration {
	t.Helper()
	m := pollLagSum.FindStringSubmatch(scrape(t, addr))
	if m == nil {
		t.Fatal("no stallmon_agent_poll_lag_seconds_sum in /metrics")
	}
	s, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		t.Fatalf("stallmon_agent_poll_lag_seconds_sum %q: %v", m[1], err)
	}
	return time.Duration(s * float64(time.Second))
}
