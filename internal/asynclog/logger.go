package asynclog

import (
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/stallmon/stallmon/internal/event"
)

// FlushTimeout bounds how long Log.Close waits for an output nobody reads.
const FlushTimeout = 2 * time.Second

// Log is an event log whose lines are written by a goroutine of their own:
// an output that blocks drops lines (counted, then reported) rather than
// stopping the caller. In JSON each event is one object per line whose
// "msg" is the event name.
type Log struct {
	*slog.Logger
	out *Writer
}

// NewLogger builds the event log on w in format (text or json) at level
// (debug, info, warn or error). Close must be called before exiting.
func NewLogger(w io.Writer, format, level string) (*Log, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
	}
	hopts := &slog.HandlerOptions{Level: lvl}
	var l Log
	switch format {
	case "text":
		l.out = New(w, DefaultMax)
		l.Logger = slog.New(slog.NewTextHandler(l.out, hopts))
	case "json":
		l.out = New(w, DefaultMax)
		l.Logger = slog.New(slog.NewJSONHandler(l.out, hopts))
	default:
		return nil, fmt.Errorf("--log-format %q: want text or json", format)
	}
	l.out.OnDrop(func(n uint64) {
		l.Warn(event.LogDropped, "lines", n, "reason", "the log output blocked")
	})
	return &l, nil
}

// Close writes out the queued lines, for at most FlushTimeout.
func (l *Log) Close() { l.out.Close(FlushTimeout) }
