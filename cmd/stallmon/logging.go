package main

import (
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/stallmon/stallmon/internal/asynclog"
)

type logOptions struct {
	format string
	level  string
	out    *asynclog.Writer
}

// evLogDropped says how many log lines a blocked output cost.
const evLogDropped = "log_dropped"

// logFlush bounds how long exiting waits for a log nobody reads.
const logFlush = 2 * time.Second

// newLogger builds the event log. In JSON each event is one object per
// line whose "msg" is the event name. Lines are written by a goroutine of
// their own: an output that blocks drops lines (counted, then reported)
// rather than stopping the caller. close must be called before exiting.
func (o *logOptions) newLogger(w io.Writer) (*slog.Logger, error) {
	log, err := o.handler(w)
	if err != nil {
		return nil, err
	}
	o.out.OnDrop(func(n uint64) {
		log.Warn(evLogDropped, "lines", n, "reason", "the log output blocked")
	})
	return log, nil
}

// close writes out the queued lines, for at most logFlush.
func (o *logOptions) close() {
	if o.out != nil {
		o.out.Close(logFlush)
	}
}

func (o *logOptions) handler(w io.Writer) (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(o.level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", o.level)
	}
	hopts := &slog.HandlerOptions{Level: lvl}
	switch o.format {
	case "text", "json":
		o.out = asynclog.New(w, asynclog.DefaultMax)
		w = o.out
	}
	switch o.format {
	case "text":
		return slog.New(slog.NewTextHandler(w, hopts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, hopts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: want text or json", o.format)
}
