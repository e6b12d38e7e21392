package supervise

import (
	"fmt"
	"time"
)

// Policy says when a service that ended is started again.
type Policy int

const (
	Never     Policy = iota // never: stallmon ends with the service
	OnFailure               // after a non-zero exit, a signal, or stallmon's kill
	Always                  // after any end but a stop asked for (SIGTERM, SIGINT)
)

var policyNames = [...]string{Never: "never", OnFailure: "on-failure", Always: "always"}

func (p Policy) String() string { return policyNames[p] }

// ParsePolicy reads never, on-failure or always.
func ParsePolicy(s string) (Policy, error) {
	for p, n := range policyNames {
		if n == s {
			return Policy(p), nil
		}
	}
	return Never, fmt.Errorf("restart policy %q: want never, on-failure or always", s)
}

// backoff is the delay before restart number n (1-based): the delay
// doubles at each restart in a row, up to 32 times the first, so a
// service that fails at once does not spin.
func backoff(first time.Duration, n int) time.Duration {
	d := first
	for i := 1; i < n && d < 32*first; i++ {
		d *= 2
	}
	return min(d, 32*first)
}
