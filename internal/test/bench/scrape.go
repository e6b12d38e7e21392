package bench

import (
	"context"
	"fmt"
	"net/http"
	"time"

	dto "github.com/prometheus/client_model/go"
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

// scrape reads the agent's metrics from its endpoint.
func scrape(ctx context.Context, addr string) (map[string]*dto.MetricFamily, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("scraping %s: %w", addr, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("scraping %s: %s", addr, resp.Status)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("parsing the metrics of %s: %w", addr, err)
	}
	return families, nil
}

// scrapePolls reads the agent's poll counters from its metrics endpoint.
func scrapePolls(ctx context.Context, addr string) (pollStats, error) {
	families, err := scrape(ctx, addr)
	if err != nil {
		return pollStats{}, err
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

// syscallJudged is what an agent's metrics say of one syscall: its
// threads in flight at the latest poll, and its budget (0: no series,
// which the agent exports for each syscall in flight whose rule is
// bounded).
type syscallJudged struct {
	InFlight float64
	Budget   time.Duration
}

// scrapeSyscall reads what the agent's metrics say of syscall.
func scrapeSyscall(ctx context.Context, addr, syscall string) (syscallJudged, error) {
	families, err := scrape(ctx, addr)
	if err != nil {
		return syscallJudged{}, err
	}
	var s syscallJudged
	for _, m := range families[metrics.Namespace+"_syscalls_in_flight"].GetMetric() {
		if label(m, "syscall") == syscall {
			s.InFlight = m.GetGauge().GetValue()
		}
	}
	for _, m := range families[metrics.Namespace+"_syscall_budget_seconds"].GetMetric() {
		if label(m, "syscall") == syscall && label(m, "fd_kind") == "" {
			s.Budget = time.Duration(m.GetGauge().GetValue() * float64(time.Second))
		}
	}
	return s, nil
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}
