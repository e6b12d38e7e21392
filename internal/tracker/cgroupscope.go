package tracker

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/stallmon/stallmon/internal/cgroup"
	"github.com/stallmon/stallmon/internal/tracker/gen"
)

// ErrNoCgroup classifies a bad --cgroup, the user's mistake.
var ErrNoCgroup = errors.New("not a cgroup that can be monitored")

// cgroupScope is every process of a cgroup v2 directory and its
// descendants. The kernel side recognises them by their cgroup's ancestor
// at the directory's depth, so processes forked, moved or spawned into it
// are watched from their first syscall, and ones that leave are not.
type cgroupScope struct {
	dir    cgroup.Dir
	id     uint64 // the directory's inode number: the kernel's cgroup id
	level  int    // depth below the root
	events *os.File
	wake   int // eventfd that ends wait on close

	guard    waitGuard
	procsBuf []byte // processes' reads, reused
	// joined is the kernel side's map of processes that joined since
	// the last look (bpf/target.h), mapped by seed; pending holds those
	// taken from it until their iterators are made (admitted).
	joined  []byte
	layout  memberLayout
	pending map[int]struct{}

	// armed is closed once the cgroup has had its processes: at once for
	// one attached to, by Started for one a service is about to be
	// started in, which is empty until then.
	armed    chan struct{}
	armOnce  sync.Once
	disarmed chan struct{} // closed by close, ends a wait for armed
}

func openCgroupScope(path string, empty bool) (*cgroupScope, error) {
	d, err := cgroup.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNoCgroup, err)
	}
	root, err := cgroup.Root()
	if err != nil {
		return nil, err
	}
	rel, err := filepath.Rel(root, d.Path)
	if err != nil {
		return nil, fmt.Errorf("cgroup %s: %w", path, err)
	}
	level := 0
	if rel != "." {
		level = len(strings.Split(rel, "/"))
	}
	if own, err := cgroup.Own(); err == nil && (own.Path == d.Path || strings.HasPrefix(own.Path, d.Path+"/")) {
		self := own.Path
		// A kill would take stallmon down with the target, before it
		// could confirm the death or say FENCED.
		return nil, fmt.Errorf("stallmon itself runs in %s, inside cgroup %s: run it outside the cgroup it watches: %w", self, d.Path, ErrNoCgroup)
	}
	var st unix.Stat_t
	if err := unix.Stat(d.Path, &st); err != nil {
		return nil, fmt.Errorf("cgroup %s: %w", path, err)
	}
	populated, err := d.Populated()
	if err != nil {
		return nil, err
	}
	switch {
	case !populated && !empty:
		return nil, fmt.Errorf("cgroup %s has no processes: %w", d.Path, ErrNoCgroup)
	case populated && empty:
		return nil, fmt.Errorf("cgroup %s already has processes, a service cannot be started in it alone: %w", d.Path, ErrNoCgroup)
	}
	events, err := os.Open(filepath.Join(d.Path, "cgroup.events"))
	if err != nil {
		return nil, fmt.Errorf("cgroup %s: %w", path, err)
	}
	wake, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		events.Close()
		return nil, fmt.Errorf("eventfd: %w", err)
	}
	c := &cgroupScope{dir: d, id: st.Ino, level: level, events: events, wake: wake, guard: newWaitGuard(),
		armed: make(chan struct{}), disarmed: make(chan struct{})}
	if !empty {
		c.arm()
	}
	return c, nil
}

func (c *cgroupScope) arm() { c.armOnce.Do(func() { close(c.armed) }) }

func (c *cgroupScope) configure(spec *ebpf.CollectionSpec, layout memberLayout) error {
	words, err := treeWords(layout)
	if err != nil {
		return err
	}
	c.layout = layout
	spec.Maps[gen.StallmonMapJoined].MaxEntries = words
	if err := spec.Variables[gen.StallmonVarTargetCgroup].Set(c.id); err != nil {
		return fmt.Errorf("setting target cgroup: %w", err)
	}
	if err := spec.Variables[gen.StallmonVarTargetCgroupLevel].Set(uint32(c.level)); err != nil {
		return fmt.Errorf("setting target cgroup depth: %w", err)
	}
	return nil
}

func (c *cgroupScope) leader() int  { return 0 }
func (c *cgroupScope) single() bool { return false }
func (c *cgroupScope) refresh()     {}

// seed maps the kernel side's joined bitmap.
func (c *cgroupScope) seed(objs *gen.StallmonObjects) error {
	mem, n, err := mapWords(objs.Joined)
	if err != nil {
		return fmt.Errorf("mapping the cgroup's joined processes: %w", err)
	}
	c.joined = mem[:n*8]
	c.pending = map[int]struct{}{}
	return nil
}

// takeJoined moves the processes the kernel side saw join into pending,
// clearing their bits with atomic exchanges: a bit set meanwhile stays
// for the next look.
func (c *cgroupScope) takeJoined() {
	words := unsafe.Slice((*uint64)(unsafe.Pointer(&c.joined[0])), len(c.joined)/8)
	for i := range words {
		if atomic.LoadUint64(&words[i]) == 0 {
			continue
		}
		for _, pid := range c.layout.appendPIDs(nil, i, atomic.SwapUint64(&words[i], 0)) {
			c.pending[pid] = struct{}{}
		}
	}
}

func (c *cgroupScope) admitted() { clear(c.pending) }

// processes lists the subtree's processes from its cgroup.procs files: a
// process that joins after the listing is walked from the next poll on.
// A threaded cgroup lists none: the poll walks the host.
func (c *cgroupScope) processes(dst []int) ([]int, error) {
	var err error
	dst, c.procsBuf, err = c.dir.SubtreeProcs(dst, c.procsBuf)
	if errors.Is(err, cgroup.ErrThreaded) {
		return dst, fmt.Errorf("%w: %w: every poll walks every task of the host", errHostWalk, err)
	}
	if err != nil || c.joined == nil {
		return dst, err
	}
	c.takeJoined()
	for pid := range c.pending {
		dst = append(dst, pid)
	}
	return dst, nil
}

// wait returns once the cgroup has no process left: cgroup.events says
// "populated 0", and the kernel wakes pollers of it with POLLPRI when it
// changes.
func (c *cgroupScope) wait() error {
	if !c.guard.enter() {
		return ErrClosed
	}
	defer c.guard.leave()
	select {
	case <-c.armed:
	case <-c.disarmed:
		return ErrClosed
	}
	buf := make([]byte, 256)
	for {
		n, err := c.events.ReadAt(buf, 0)
		if err != nil && n == 0 {
			return fmt.Errorf("reading cgroup.events: %w", err)
		}
		populated, err := cgroup.ParsePopulated(string(buf[:n]))
		if err != nil {
			return err
		}
		if !populated {
			return nil
		}
		fds := []unix.PollFd{{Fd: int32(c.events.Fd()), Events: unix.POLLPRI}, {Fd: int32(c.wake), Events: unix.POLLIN}}
		if _, err := unix.Poll(fds, -1); err != nil && !errors.Is(err, unix.EINTR) {
			return fmt.Errorf("waiting on cgroup.events: %w", err)
		}
		if fds[1].Revents != 0 {
			return ErrClosed
		}
	}
}

// signal kills every process of the subtree through cgroup.kill, at once
// and none looked up by PID, so none can be a stranger that reused one;
// on a kernel without it (before 5.14) by freezing the cgroup and
// signalling each member through a pidfd (cgroup.Dir.Kill). stallmon
// doctor says which this kernel gets. The agent sends nothing but
// SIGKILL.
func (c *cgroupScope) signal(sig unix.Signal) error {
	if sig != unix.SIGKILL {
		return fmt.Errorf("a cgroup is only sent SIGKILL (cgroup.kill), not %s", unix.SignalName(sig))
	}
	return c.dir.Kill()
}

// close ends wait, lets it return, and only then closes the descriptors
// it polls.
func (c *cgroupScope) close() error {
	return c.guard.close(func() error {
		close(c.disarmed)
		_, err := unix.Write(c.wake, []byte{1, 0, 0, 0, 0, 0, 0, 0})
		if err != nil {
			return fmt.Errorf("waking the cgroup's wait: %w", err)
		}
		return nil
	}, func() error {
		errs := []error{c.events.Close(), unix.Close(c.wake)}
		if c.joined != nil {
			errs = append(errs, unix.Munmap(c.joined[:cap(c.joined)]))
			c.joined = nil
		}
		return errors.Join(errs...)
	})
}
