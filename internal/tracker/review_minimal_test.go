package tracker

import (
	"testing"
	"time"

	"github.com/cilium/ebpf"

	"github.com/stallmon/stallmon/internal/testutil/privtest"
	"github.com/stallmon/stallmon/internal/tracker/gen"
)

// Review (h-compat510): the minimal object keys records by tid and tells
// a reused tid by start_time (bpf/maps.h inflight_get). No other test
// plants a record of another thread's start_time: with the check gone, a
// new thread that inherits a dead thread's tid inherits its in-flight
// word too, and a thread that has waited a moment in a read is judged
// to have waited a minute (a wrong kill at the deadline). This pins it.
func TestReviewMinimalStaleRecordOfReusedTidIgnored(t *testing.T) {
	privtest.Require(t)
	p := startWorkload(t)
	m, err := Attach(Process(p.PID), nil, Options{BPFFeatures: MinimalFeatures})
	if err != nil {
		t.Fatalf("attaching the minimal object: %v", err)
	}
	defer m.Close()
	tid := fieldInt(t, do(t, p, "pipe-wait"), "tid")
	defer do(t, p, "pipe-release")
	read, _ := SyscallNr("read")
	stale := gen.StallmonMinimalInflight{Word: wordAged(t, read, time.Minute), StartTime: 12345}
	if err := m.objs.Inflight.Update(uint32(tid), stale, ebpf.UpdateAny); err != nil {
		t.Fatalf("planting a dead thread's record under tid %d: %v", tid, err)
	}
	for range 5 {
		th := mustThread(t, snapshot(t, m), tid)
		if th.Elapsed > 30*time.Second {
			t.Fatalf("thread %d, in a read for a moment, took the age of a record another thread (start_time 12345) left under its tid: %+v", tid, th)
		}
	}
}
