package agent

import (
	"fmt"
	"log/slog"

	"github.com/stallmon/stallmon/internal/event"
)

// LateReturn says what becomes of a target whose stall ends after the
// agent declared it: peers may have taken over on STALLED, and the old
// node coming back would make two.
type LateReturn int

const (
	// LateReturnFence keeps a declared target dead: it is killed when
	// its stalled syscall returns (or its state ends), and, when stallmon
	// may not kill (--no-kill, or a rule that never kills), it is never
	// reported alive again in this incarnation.
	LateReturnFence LateReturn = iota
	// LateReturnResume reports the target alive again once nothing is
	// over budget, for clusters whose peers act only on FENCED or silence.
	LateReturnResume
)

func (l LateReturn) String() string {
	if l == LateReturnResume {
		return "resume"
	}
	return "fence"
}

// ParseLateReturn reads --late-return.
func ParseLateReturn(s string) (LateReturn, error) {
	switch s {
	case "fence":
		return LateReturnFence, nil
	case "resume":
		return LateReturnResume, nil
	}
	return 0, fmt.Errorf("late return %q: want fence or resume", s)
}

// reasonLateReturn is the kill's reason when a declared stall ended.
const reasonLateReturn = "late_return"

// declaredDead applies the fence policy to one poll's stalls. The first
// stall the gate closes on is declared: STALLED goes out for it at once.
// Once it is no longer over budget, it stays in what the gate sees, with
// reason late_return, so the gate never opens again; the returned stall
// is the one to fence: nil while it is still stuck, and nil for good when
// the rule it broke never kills (kill_after: never, --kill-after 0): the
// operator said this stall is not stallmon's to end, and that holds after
// it ended too. The target then runs on, reported stalled until restarted.
func (a *Agent) declaredDead(over []judged) ([]judged, *judged) {
	if a.cfg.LateReturn != LateReturnFence {
		return over, nil
	}
	if a.declared == nil {
		if len(over) == 0 {
			return over, nil
		}
		d := over[0]
		for _, j := range over[1:] {
			if worse(j, d) {
				d = j
			}
		}
		a.declared = &d
	}
	for _, j := range over {
		if j.key() == a.declared.key() {
			return over, nil
		}
	}
	late := *a.declared
	late.reason = reasonLateReturn
	fence := late.death != nil || late.rule.Kills()
	if !a.lateLogged {
		a.lateLogged = true
		a.event(slog.LevelError, event.LateReturn, append(judgedAttrs(late), slog.Bool("fence", fence))...)
	}
	if !fence {
		return append(over, late), nil
	}
	return append(over, late), &late
}
