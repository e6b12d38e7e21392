package tracker

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf"

	"github.com/stallmon/stallmon/internal/tracker/gen"
)

// Options select what the tracker records beyond the in-flight syscalls.
// The zero value records only what the agent needs.
type Options struct {
	// LatencyHistogram makes sys_exit add each finished syscall of the
	// target to a per-syscall latency histogram. It costs the target
	// nanoseconds per syscall (see docs/cost.md), so it is opt-in; when
	// off, the code is removed at load time.
	LatencyHistogram bool
	// Quiet, when set, lets a snapshot leave out the threads it says wait
	// by design, counting them instead (Snapshot.Quiet): a pass then costs
	// next to nothing per idle thread. A thread in user space (running or
	// runnable outside any syscall) is quiet too, unless stopped, traced,
	// frozen, exiting or dumping core; one asleep outside any syscall (a
	// page fault) never is.
	Quiet QuietFunc
	// Kind chooses how syscalls are seen; the zero value is
	// TrackerTracepoint.
	Kind Kind
	// NoWaitSites makes the iterator take no kernel stacks: every
	// Thread.Wait is None, and the agent judges as it did before wait
	// sites. For make bench, which measures what the stacks cost.
	NoWaitSites bool
	// NoThreadWalk walks every process per visit, where the kernel
	// could walk each in one visit (threads.go): for make bench to
	// compare the two, and the tests to cover the per-visit walk.
	NoThreadWalk bool
	// BPFFeatures chooses the BPF object; the zero value is ProbeFeatures.
	BPFFeatures BPFFeatures
}

// BPFFeatures is which of the two BPF objects the tracker loads.
type BPFFeatures string

const (
	// ProbeFeatures loads the full object, and the minimal one only
	// where the kernel lacks what the full one needs and the minimal
	// one has a fallback for all of it (Feature.Minimal).
	ProbeFeatures BPFFeatures = "probe"
	// MinimalFeatures loads the minimal object whatever the kernel
	// offers: for a kernel whose verifier trips on the full one, and
	// for tests of the fallbacks on a kernel that has everything.
	MinimalFeatures BPFFeatures = "minimal"
)

// ParseBPFFeatures accepts the names of the object choices.
func ParseBPFFeatures(s string) (BPFFeatures, error) {
	switch f := BPFFeatures(s); f {
	case ProbeFeatures, MinimalFeatures:
		return f, nil
	}
	return "", fmt.Errorf("unknown BPF feature set %q: want %s or %s", s, ProbeFeatures, MinimalFeatures)
}

// Kind is how the tracker learns which syscall each thread is in.
type Kind string

const (
	// Tracepoint records every syscall's entry and exit of the
	// target (sys_enter and sys_exit): exact entry times, for a cost on
	// every syscall of every process of the host (see docs/cost.md).
	Tracepoint Kind = "tracepoint"
	// Sampled attaches nothing to syscalls: each snapshot reads
	// the syscall from each thread's saved registers, and a thread that
	// has neither slept, run in user space nor made a read or write call
	// since the previous snapshot is taken to be in the same syscall
	// since then. Entry times are known to within one poll; a syscall
	// that wakes up inside itself (a retry loop) starts anew each time it
	// does; no latency histogram.
	Sampled Kind = "sampled"
)

// ParseKind accepts the names of the trackers.
func ParseKind(s string) (Kind, error) {
	switch t := Kind(s); t {
	case Tracepoint, Sampled:
		return t, nil
	}
	return "", fmt.Errorf("unknown tracker %q: want %s or %s", s, Tracepoint, Sampled)
}

func (t Kind) sampled() bool { return t == Sampled }

// ErrClosed is returned by reads on a Tracker after Close.
var ErrClosed = errors.New("tracker is closed")

func (o Options) apply(spec *ebpf.CollectionSpec) error {
	if o.Kind != "" {
		if _, err := ParseKind(string(o.Kind)); err != nil {
			return err
		}
	}
	if o.BPFFeatures != "" {
		if _, err := ParseBPFFeatures(string(o.BPFFeatures)); err != nil {
			return err
		}
	}
	if o.LatencyHistogram && o.Kind.sampled() {
		return errors.New("the latency histogram needs the tracepoint tracker: the sampled one sees no syscall end")
	}
	if err := spec.Variables[gen.StallmonVarLatencyHistogram].Set(o.LatencyHistogram); err != nil {
		return fmt.Errorf("setting latency histogram switch: %w", err)
	}
	take := uint32(1)
	if o.NoWaitSites {
		take = 0
	}
	if err := spec.Variables[gen.StallmonVarTakeWaitSites].Set(take); err != nil {
		return fmt.Errorf("setting wait sites switch: %w", err)
	}
	if !o.LatencyHistogram {
		// Nothing writes it: do not pin 512 empty histograms in the kernel.
		spec.Maps[gen.StallmonMapSyscallLatencySeconds].MaxEntries = 1
	}
	return nil
}

// holdOpen keeps the tracker from being closed until unlock is called, so
// that a reader on another goroutine (a metrics scrape) never uses a map
// fd that Close has released, and that the kernel may have reused.
func (m *Tracker) holdOpen() (unlock func(), err error) {
	m.closeMu.Lock()
	if m.isClosed {
		m.closeMu.Unlock()
		return nil, ErrClosed
	}
	return m.closeMu.Unlock, nil
}
