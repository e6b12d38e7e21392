package keepalived

import "github.com/stallmon/stallmon/internal/sink"

// The values the sink writes. Only 0 is healthy; the others differ so
// that `cat` tells why the VIP left. They are meant for a track_file of
// weight 0: with another weight keepalived multiplies the value into the
// priority, and the states would weigh differently.
const (
	ValueAlive    = 0
	ValueStalled  = 1 // a syscall is over its budget
	ValueBlind    = 2 // no fresh poll: stallmon cannot vouch for the service
	ValueFenced   = 3 // the service is being killed, was killed or exited
	ValueLeaving  = 4 // stallmon stopped
	ValueStarting = 5 // stallmon has not yet judged the service
)

// Value is what the file says for state s. A state this version does not
// know is unhealthy, as blind.
func Value(s sink.State) int {
	switch s {
	case sink.Alive:
		return ValueAlive
	case sink.Stalled:
		return ValueStalled
	case sink.Fenced:
		return ValueFenced
	case sink.Leaving:
		return ValueLeaving
	}
	return ValueBlind
}

// valueName names a value in logs.
func valueName(v int) string {
	switch v {
	case ValueAlive:
		return "alive"
	case ValueStalled:
		return "stalled"
	case ValueBlind:
		return "blind"
	case ValueFenced:
		return "fenced"
	case ValueLeaving:
		return "leaving"
	case ValueStarting:
		return "starting"
	}
	return "unknown"
}
