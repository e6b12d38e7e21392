package harness

import (
	"bufio"
	"encoding/json"
	"io"
	"testing"
	"time"
)

// EventStream reads JSON events (one object per line) from a running stallmon.
type EventStream struct {
	t   testing.TB
	ch  chan map[string]any
	all []map[string]any
}

// NewEventStream decodes r until EOF; a line that is not one JSON object
// fails the test.
func NewEventStream(t testing.TB, r io.Reader) *EventStream {
	return newEventStream(t, r, nil)
}

// newEventStream is NewEventStream with check run on every event as it is
// decoded, whether or not the test ever waits for it; its error fails the
// test.
func newEventStream(t testing.TB, r io.Reader, check func(ev map[string]any) error) *EventStream {
	es := &EventStream{t: t, ch: make(chan map[string]any, 1024)}
	go func() {
		defer close(es.ch)
		sc := bufio.NewScanner(r)
		sc.Buffer(nil, 1<<20) // unkillable events carry a kernel stack
		for sc.Scan() {
			var ev map[string]any
			if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
				t.Errorf("event is not one JSON object per line: %q: %v", sc.Text(), err)
				continue
			}
			if check != nil {
				if err := check(ev); err != nil {
					t.Errorf("event %v: %v", ev, err)
				}
			}
			es.ch <- ev
		}
	}()
	return es
}

// Next returns the next event named msg, failing the test after timeout.
func (es *EventStream) Next(msg string, timeout time.Duration) map[string]any {
	es.t.Helper()
	return es.NextWhere(msg, timeout, func(ev map[string]any) bool { return ev["msg"] == msg })
}

// NextAny returns the next event, whatever it is.
func (es *EventStream) NextAny(timeout time.Duration) map[string]any {
	es.t.Helper()
	return es.NextWhere("any", timeout, func(map[string]any) bool { return true })
}

// NextWhere returns the next event that matches, failing the test after
// timeout or at the end of the stream.
func (es *EventStream) NextWhere(what string, timeout time.Duration, match func(map[string]any) bool) map[string]any {
	es.t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case ev, ok := <-es.ch:
			if !ok {
				es.t.Fatalf("event stream ended before %q; saw %v", what, es.all)
			}
			es.all = append(es.all, ev)
			if match(ev) {
				return ev
			}
		case <-deadline:
			es.t.Fatalf("no %q event within %v; saw %v", what, timeout, es.all)
		}
	}
}

// All returns the events read so far.
func (es *EventStream) All() []map[string]any { return es.all }

// Drain takes in the events already read, without waiting, and returns
// every event so far.
func (es *EventStream) Drain() []map[string]any {
	for {
		select {
		case ev, ok := <-es.ch:
			if !ok {
				return es.all
			}
			es.all = append(es.all, ev)
		default:
			return es.all
		}
	}
}

// Rest reads to the end of the stream (the process exited) and returns
// every event.
func (es *EventStream) Rest() []map[string]any {
	for ev := range es.ch {
		es.all = append(es.all, ev)
	}
	return es.all
}

// EventTime is when stallmon logged ev (its "time" field).
func EventTime(t testing.TB, ev map[string]any) time.Time {
	t.Helper()
	s, _ := ev["time"].(string)
	at, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatalf("event time %q: %v", s, err)
	}
	return at
}
