package agent

import (
	"fmt"
	"time"
)

// Health is the agent's answer to the two questions an orchestrator asks,
// as Kubernetes probes do: is stallmon itself working (Live), and may the
// service be sent traffic (Ready: the heartbeat may say ALIVE).
type Health struct {
	Live, Ready bool
	// Reason says why not, "" when both hold.
	Reason string
}

// Health judges the agent now. It is safe from any goroutine.
func (a *Agent) Health() Health {
	st := a.Stats()
	return health(st, a.cfg.PollInterval, time.Now())
}

// health is Health on a Stats taken at now. The loop is alive while its
// latest poll, failed or not, is no older than three intervals (and a
// second, for a machine under load); readiness is the gate's own verdict.
func health(st Stats, interval time.Duration, now time.Time) Health {
	h := Health{Live: true, Ready: st.Gate == gateAlive.String()}
	switch limit := 3*interval + time.Second; {
	case st.LastLoop.IsZero():
		h.Live = false
		h.Reason = "the agent has not polled yet"
	case now.Sub(st.LastLoop) > limit:
		h.Live = false
		h.Reason = fmt.Sprintf("the agent's loop has not polled for %.1fs", now.Sub(st.LastLoop).Seconds())
	}
	if h.Ready || h.Reason != "" {
		return h
	}
	switch st.Gate {
	case gateStalled.String():
		h.Reason = "stalled"
		for i, s := range st.Stalled {
			// One line per stalled thread, the first one as before.
			sep := ": "
			if i > 0 {
				sep = "\n"
			}
			h.Reason += sep + stalledLine(s)
		}
	case gateBlind.String():
		h.Reason = "blind: no fresh poll of the target"
		switch {
		case st.Tampered:
			h.Reason = "blind: a BPF link of the tracker was changed from outside; restart stallmon to attach anew"
		case st.Unknown != "":
			h.Reason = "blind: " + st.Unknown
		}
	case gateFenced.String():
		h.Reason = "fenced: the target is being or has been killed, or has exited"
	default:
		h.Reason = st.Gate
	}
	return h
}

// stalledLine says what one stalled thread does, and where it sleeps.
func stalledLine(s StalledThread) string {
	in := "in " + s.Syscall
	if s.Syscall == "" {
		in = "outside any syscall"
	}
	line := fmt.Sprintf("thread %d (%s) %s for %.1fs", s.TID, s.Comm, in, s.Elapsed.Seconds())
	if s.Wait != "" {
		line += ", waiting in " + s.Wait
		if s.Stack != "" {
			line += ": " + s.Stack
		}
	}
	return line
}
