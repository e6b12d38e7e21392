package tracker

import (
	"errors"
	"fmt"
	"log/slog"

	"github.com/cilium/ebpf"

	"github.com/stallmon/stallmon/internal/tracker/gen"
)

// Options select what the tracker records beyond the in-flight syscalls.
// The zero value records only what the agent needs.
type Options struct {
	// LatencyHistogram makes sys_exit add each finished syscall of the
	// target to a per-syscall latency histogram. It costs the target
	// nanoseconds per syscall (see README, "Cost"), so it is opt-in; when
	// off, the code is removed at load time.
	LatencyHistogram bool
	// Quiet, when set, lets a snapshot leave out the threads it says wait
	// by design, counting them instead (Snapshot.Quiet): a pass then costs
	// next to nothing per idle thread. A thread in user space is quiet too,
	// unless stopped, traced, frozen, exiting or dumping core.
	Quiet QuietFunc
	// Tracker chooses how syscalls are seen; the zero value is
	// TrackerTracepoint.
	Tracker Tracker
}

// Tracker is how the monitor learns which syscall each thread is in.
type Tracker string

const (
	// TrackerTracepoint records every syscall's entry and exit of the
	// target (sys_enter and sys_exit): exact entry times, for a cost on
	// every syscall of every process of the host (see README, "Cost").
	TrackerTracepoint Tracker = "tracepoint"
	// TrackerSampled attaches nothing to syscalls: each snapshot reads
	// the syscall from each thread's saved registers, and a thread that
	// has neither slept nor run in user space since the previous snapshot
	// is taken to be in the same syscall since then. Entry times are known
	// to within one poll; a syscall that wakes up inside itself (a retry
	// loop) starts anew each time it does; no latency histogram.
	TrackerSampled Tracker = "sampled"
)

// ParseTracker accepts the names of the trackers.
func ParseTracker(s string) (Tracker, error) {
	switch t := Tracker(s); t {
	case TrackerTracepoint, TrackerSampled:
		return t, nil
	}
	return "", fmt.Errorf("unknown tracker %q: want %s or %s", s, TrackerTracepoint, TrackerSampled)
}

func (t Tracker) sampled() bool { return t == TrackerSampled }

// Attach is AttachWith with the default options.
func Attach(pid int, log *slog.Logger) (*Monitor, error) {
	return AttachWith(pid, log, Options{})
}

// ErrClosed is returned by reads on a Monitor after Close.
var ErrClosed = errors.New("monitor is closed")

func (o Options) apply(spec *ebpf.CollectionSpec) error {
	if o.Tracker != "" {
		if _, err := ParseTracker(string(o.Tracker)); err != nil {
			return err
		}
	}
	if o.LatencyHistogram && o.Tracker.sampled() {
		return errors.New("the latency histogram needs the tracepoint tracker: the sampled one sees no syscall end")
	}
	if err := spec.Variables[gen.StallmonVarLatencyHistogram].Set(o.LatencyHistogram); err != nil {
		return fmt.Errorf("setting latency histogram switch: %w", err)
	}
	if !o.LatencyHistogram {
		// Nothing writes it: do not pin 512 empty histograms in the kernel.
		spec.Maps[gen.StallmonMapSyscallLatencySeconds].MaxEntries = 1
	}
	return nil
}

// holdOpen keeps the monitor from being closed until unlock is called, so
// that a reader on another goroutine (a metrics scrape) never uses a map
// fd that Close has released, and that the kernel may have reused.
func (m *Monitor) holdOpen() (unlock func(), err error) {
	m.closeMu.Lock()
	if m.isClosed {
		m.closeMu.Unlock()
		return nil, ErrClosed
	}
	return m.closeMu.Unlock, nil
}
