package peer

import (
	"fmt"

	"github.com/stallmon/stallmon/heartbeat"
)

// State is what the detector believes about a node.
type State uint8

const (
	Unknown State = iota // never heard of
	Alive
	Stalled // the node's agent says a syscall is stuck
	Fenced  // the node's agent says it killed its process
	Dead    // nothing valid heard for longer than the timeout
	Left    // the node said goodbye
)

func (s State) String() string {
	switch s {
	case Unknown:
		return "unknown"
	case Alive:
		return "alive"
	case Stalled:
		return "stalled"
	case Fenced:
		return "fenced"
	case Dead:
		return "dead"
	case Left:
		return "left"
	}
	return fmt.Sprintf("State(%d)", uint8(s))
}

// MarshalText makes states readable in JSON and slog output.
func (s State) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// failed reports whether s is one of the states a failover reacts to.
func (s State) failed() bool { return s == Stalled || s == Fenced || s == Dead }

func fromWire(s heartbeat.State) State {
	switch s {
	case heartbeat.StateAlive:
		return Alive
	case heartbeat.StateStalled:
		return Stalled
	case heartbeat.StateFenced:
		return Fenced
	case heartbeat.StateLeaving:
		return Left
	}
	// Unmarshal refuses unknown states, so this is a caller handing in a
	// packet it built by hand.
	return Unknown
}
