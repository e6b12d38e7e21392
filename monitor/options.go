package monitor

import (
	"errors"
	"fmt"
	"log/slog"

	"github.com/cilium/ebpf"

	"github.com/stallmon/stallmon/gen"
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
}

// Attach is AttachWith with the default options.
func Attach(pid int, log *slog.Logger) (*Monitor, error) {
	return AttachWith(pid, log, Options{})
}

// ErrClosed is returned by reads on a Monitor after Close.
var ErrClosed = errors.New("monitor is closed")

func (o Options) apply(spec *ebpf.CollectionSpec) error {
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
