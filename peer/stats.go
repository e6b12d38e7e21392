package peer

import (
	"errors"
	"maps"

	"github.com/stallmon/stallmon/heartbeat"
)

// Stats counts packets. Rejected is keyed by RejectReason.
type Stats struct {
	Accepted uint64
	Rejected map[string]uint64
}

// Total rejected packets, whatever the reason.
func (s Stats) TotalRejected() uint64 {
	var n uint64
	for _, v := range s.Rejected {
		n += v
	}
	return n
}

func (s *Stats) reject(err error) {
	if s.Rejected == nil {
		s.Rejected = make(map[string]uint64)
	}
	s.Rejected[RejectReason(err)]++
}

func (s Stats) clone() Stats {
	s.Rejected = maps.Clone(s.Rejected)
	if s.Rejected == nil {
		s.Rejected = map[string]uint64{}
	}
	return s
}

func (s Stats) merge(o Stats) Stats {
	out := s.clone()
	out.Accepted += o.Accepted
	for k, v := range o.Rejected {
		out.Rejected[k] += v
	}
	return out
}

var reasons = []struct {
	err  error
	name string
}{
	{heartbeat.ErrTruncated, "truncated"},
	{heartbeat.ErrOversized, "oversized"},
	{heartbeat.ErrBadMagic, "bad_magic"},
	{heartbeat.ErrBadVersion, "bad_version"},
	{heartbeat.ErrBadState, "bad_state"},
	{heartbeat.ErrUnknownKey, "unknown_key"},
	{heartbeat.ErrBadMAC, "bad_mac"},
	{heartbeat.ErrUnauthenticated, "unauthenticated"},
	{heartbeat.ErrMalformed, "malformed"},
	{ErrReplay, "replay"},
	{ErrStale, "stale"},
	{ErrOutsideWindow, "outside_window"},
	{ErrAfterFailover, "after_failover"},
	{ErrTooManyNodes, "too_many_nodes"},
}

// RejectReason names why a packet was rejected, in a form fit for a metric
// label; "other" for errors it does not know.
func RejectReason(err error) string {
	for _, r := range reasons {
		if errors.Is(err, r.err) {
			return r.name
		}
	}
	return "other"
}
