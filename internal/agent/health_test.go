package agent

import (
	"strings"
	"testing"
	"time"
)

func TestHealth(t *testing.T) {
	now := time.Unix(1000, 0)
	poll := 100 * time.Millisecond
	stalled := []StalledThread{{TID: 7, Comm: "main", Syscall: "read", Elapsed: 2 * time.Second}}
	two := []StalledThread{
		{TID: 7, Comm: "main", Syscall: "read", Elapsed: 2 * time.Second, Wait: "fuse request_wait_answer", Stack: "request_wait_answer | fuse_simple_request"},
		{TID: 9, Comm: "iou-wrk-7", Elapsed: time.Second, Wait: "storage folio_wait_bit_common", Stack: "folio_wait_bit_common"},
	}
	for _, c := range []struct {
		name        string
		st          Stats
		live, ready bool
		reason      string
	}{
		{"healthy", Stats{Gate: "alive", LastLoop: now.Add(-poll)}, true, true, ""},
		{"stalled", Stats{Gate: "stalled", LastLoop: now, Stalled: stalled}, true, false, "stalled: thread 7 (main) in read for 2.0s"},
		{"stalled, with waits", Stats{Gate: "stalled", LastLoop: now, Stalled: two}, true, false,
			"stalled: thread 7 (main) in read for 2.0s, waiting in fuse request_wait_answer: request_wait_answer | fuse_simple_request\n" +
				"thread 9 (iou-wrk-7) outside any syscall for 1.0s, waiting in storage folio_wait_bit_common: folio_wait_bit_common"},
		{"blind", Stats{Gate: "blind", LastLoop: now}, true, false, "blind: no fresh poll"},
		{"thread unknown", Stats{Gate: "blind", LastLoop: now, Unknown: "thread 9 (w) unknown: why"}, true, false,
			"blind: thread 9 (w) unknown: why"},
		{"fenced", Stats{Gate: "fenced", LastLoop: now}, true, false, "fenced"},
		{"loop stuck", Stats{Gate: "blind", LastLoop: now.Add(-5 * time.Second)}, false, false, "has not polled for 5.0s"},
		{"not started", Stats{Gate: "blind"}, false, false, "not polled yet"},
	} {
		h := health(c.st, poll, now)
		if h.Live != c.live || h.Ready != c.ready || !strings.Contains(h.Reason, c.reason) || (c.reason == "" && h.Reason != "") {
			t.Errorf("%s: %+v, want live %v ready %v reason %q", c.name, h, c.live, c.ready, c.reason)
		}
	}
}
