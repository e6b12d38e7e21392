package metrics

import (
	"github.com/stallmon/stallmon/internal/egress"

	"errors"
	"time"

	"github.com/stallmon/stallmon/internal/agent"
	"github.com/stallmon/stallmon/internal/sink"
	"github.com/stallmon/stallmon/internal/tracker"
	"github.com/stallmon/stallmon/peer"
)

// The fakes hold fixed values, so that the fixtures in testdata/ pin the
// exposition byte for byte.

var epoch = time.Unix(1_800_000_000, 0)

type fakeAgent struct{ st agent.Stats }

func (f fakeAgent) Stats() agent.Stats { return f.st }

func stalledAgentStats() agent.Stats {
	bounds := []time.Duration{time.Millisecond, 10 * time.Millisecond}
	return agent.Stats{
		PID: 4242, NodeID: "node-a", Gate: "stalled",
		HeartbeatsSent: map[string]uint64{"alive": 120, "stalled": 3},
		Sinks: []sink.Stats{{Name: "heartbeat", Applied: 123, OK: true, State: "stalled"},
			{Name: "keepalived", Applied: 2, Failures: 5, OK: false, State: "alive"}},
		HeartbeatSendErrors: map[string]uint64{"alive": 1},
		Stalls:              map[string]uint64{"read": 2, "fsync": 1},
		Kills:               map[string]uint64{"read": 1},
		Polls:               500, PollFailures: 2, LatePolls: 1,
		PollDuration: agent.Histogram{Bounds: bounds, Counts: []uint64{490, 9, 1}, Count: 500, Sum: 250 * time.Millisecond},
		PollLag:      agent.Histogram{Bounds: bounds, Counts: []uint64{495, 3, 1}, Count: 499, Sum: 40 * time.Millisecond},
		LastPoll:     epoch,
		InFlight: []agent.InFlight{
			{Syscall: "epoll_wait", Threads: 2, Oldest: 90 * time.Second},
			{Syscall: "read", Threads: 3, Oldest: 7 * time.Second},
		},
		Stalled: []agent.StalledThread{{TID: 4250, Comm: "worker", Syscall: "read", FDKind: "regular",
			Elapsed: 7 * time.Second, Budget: 5 * time.Second, KillAfter: time.Minute}},
		// Two sockets on one port (IPv4 and IPv6) make one series.
		Listeners: []agent.ListenerQueue{
			{Label: "6379", Kind: "tcp", Queued: 3, Limit: 511, Waiting: 4 * time.Second},
			{Label: "6379", Kind: "tcp", Queued: 2, Limit: 511},
			{Label: "/run/svc.sock", Kind: "unix", Limit: 128},
		},
	}
}

type fakeTracker struct {
	hist     bool
	failHist bool
}

func (f fakeTracker) Counters() (tracker.Counters, error) {
	return tracker.Counters{Enter: 1000, StorageCreated: 12, ExitNoEntry: 3, StorageReleased: 4, DiedInSyscall: 1, EntryOverwritten: 2, StaleWords: 5, PartialWalks: 8, TasksVisited: 230, ThreadWalk: true, WalkOverflows: 3,
		StorageFailed: 6, UnrecordedThreads: 1, UnrecordedUnmarked: 7}, nil
}

func (f fakeTracker) LatencyHistogramEnabled() bool { return f.hist }

func (f fakeTracker) LatencyHistogram() ([]tracker.SyscallLatency, error) {
	if f.failHist {
		return nil, errors.New("map gone")
	}
	if !f.hist {
		return nil, nil
	}
	counts := make([]uint64, len(tracker.LatencyBounds())+1)
	counts[0], counts[3], counts[len(counts)-1] = 5, 2, 1
	return []tracker.SyscallLatency{{Nr: 0, Syscall: "read", Counts: counts, Count: 8, Sum: 1200 * time.Second}}, nil
}

func (f fakeTracker) ProgramStats() ([]tracker.ProgramStats, error) {
	return []tracker.ProgramStats{
		{Program: "sys_enter", RunCount: 5000, Runtime: 250 * time.Microsecond},
		{Program: "sys_exit", RunCount: 4990, Runtime: 200 * time.Microsecond, RecursionMisses: 1},
	}, nil
}

type fakeListener struct {
	st    peer.Stats
	nodes []peer.NodeStatus
}

func (f fakeListener) Stats() peer.Stats        { return f.st }
func (f fakeListener) Nodes() []peer.NodeStatus { return f.nodes }

type fakeEgress struct{}

func (fakeEgress) Stats() (egress.Stats, error) {
	return egress.Stats{Open: true, Dropped: []egress.DestDropped{{Dest: "udp:239.1.2.3:5000", Packets: 0}}, ScanFailures: 2}, nil
}

type failingEgress struct{}

func (failingEgress) Stats() (egress.Stats, error) { return egress.Stats{}, errors.New("map gone") }
