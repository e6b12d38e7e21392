package agent

import (
	"log/slog"

	"github.com/stallmon/stallmon/internal/event"
	"github.com/stallmon/stallmon/internal/tracker"
)

// trackerTampered handles a poll that found a link of the tracker changed
// from outside (another program behind the snapshot iterator): nothing it
// reports can be trusted any more, even if the link is put back, so the
// gate goes blind for good, at once rather than when the last poll goes
// stale, and the event is logged once. Only a new attach (restarting
// stallmon) makes links that can be trusted again.
func (a *Agent) trackerTampered(te *tracker.TamperError) {
	if a.tampered {
		return
	}
	a.tampered = true
	a.gate.distrust()
	a.event(slog.LevelError, event.TrackerTampered, slog.String("link", te.Link),
		slog.Uint64("link_id", uint64(te.LinkID)), slog.String("change", te.Change))
	a.pub.poke()
}
