package bench

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/stallmon/stallmon/internal/metrics"
)

// pollStats is what an agent's metrics say of its polls so far.
type pollStats struct {
	Polls    uint64        // successful polls
	Observed uint64        // polls timed, failed ones included
	Time     time.Duration // their summed duration
}

// scrapePolls reads the agent's poll counters from its metrics endpoint.
func scrapePolls(ctx context.Context, addr string) (pollStats, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/metrics", nil)
	if err != nil {
		return pollStats{}, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return pollStats{}, fmt.Errorf("scraping %s: %w", addr, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return pollStats{}, fmt.Errorf("scraping %s: %s", addr, resp.Status)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		return pollStats{}, fmt.Errorf("parsing the metrics of %s: %w", addr, err)
	}
	var st pollStats
	polls, ok := families[metrics.Namespace+"_agent_polls_total"]
	if !ok || len(polls.GetMetric()) != 1 {
		return pollStats{}, fmt.Errorf("metrics of %s: no %s_agent_polls_total", addr, metrics.Namespace)
	}
	st.Polls = uint64(polls.GetMetric()[0].GetCounter().GetValue())
	dur, ok := families[metrics.Namespace+"_agent_poll_duration_seconds"]
	if !ok || len(dur.GetMetric()) != 1 {
		return pollStats{}, fmt.Errorf("metrics of %s: no %s_agent_poll_duration_seconds", addr, metrics.Namespace)
	}
	h := dur.GetMetric()[0].GetHistogram()
	st.Observed = h.GetSampleCount()
	st.Time = time.Duration(h.GetSampleSum() * float64(time.Second))
	return st, nil
}
