package tracker

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/stallmon/stallmon/internal/tracker/gen"
)

// treeScope is a process and all its descendants, including those forked
// after attach: the kernel side keeps their tgids as bits of its tree map,
// setting each child's of a member at fork and clearing a member's when its
// last thread exits. Userspace shares the bitmap through mmap and changes
// it only with atomic operations, as the kernel side does.
//
// The kernel side clears a bit at sched_process_exit, before the process
// has closed its files and before its pidfd turns readable; a process the
// seed entered may even exit before its bit is set, so that the kernel's
// clear comes first and the bit would stay for a stranger that reuses the
// pid. So every process userspace entered or signalled is also held by a
// pidfd: its bit is cleared when the pidfd turns readable, and the tree is
// gone only once every held pidfd is.
type treeScope struct {
	root   *target
	mem    []byte   // the tree map, mapped by seed
	words  []uint64 // mem as words, laid out as layout says
	layout memberLayout

	heldMu  sync.Mutex
	held    map[int]int // pid -> pidfd, for processes seeded or signalled
	killing atomic.Bool // SIGKILL was sent: send it again to late forks

	guard waitGuard
	stop  chan struct{}
}

// treePoll is how often wait looks at the tree once the root has exited
// (its descendants may live on): the bitmap has no notification.
const treePoll = 50 * time.Millisecond

// openTree opens pid and all its descendants, present and future.
func openTree(pid int) (scope, error) {
	if pid == 1 {
		return nil, fmt.Errorf("the tree of pid 1 is every process of the host: %w", ErrNotProcess)
	}
	root, err := openTarget(pid)
	if err != nil {
		return nil, err
	}
	return &treeScope{root: root, held: map[int]int{}, stop: make(chan struct{}), guard: newWaitGuard()}, nil
}

func (s *treeScope) configure(spec *ebpf.CollectionSpec, layout memberLayout) error {
	if err := spec.Variables[gen.StallmonVarTargetTree].Set(true); err != nil {
		return fmt.Errorf("setting tree mode: %w", err)
	}
	words, err := treeWords(layout)
	if err != nil {
		return err
	}
	s.layout = layout
	spec.Maps[gen.StallmonMapTree].MaxEntries = words
	return nil
}

func (s *treeScope) leader() int  { return s.root.pid }
func (s *treeScope) single() bool { return false }

// seed enters the root and every descendant /proc shows now, each by its
// pidfd first. The fork program is attached already, and each process's
// bit is set before its children are read, so a process forked during
// the walk is entered by one or the other.
func (s *treeScope) seed(objs *gen.StallmonObjects) error {
	mem, n, err := mapWords(objs.Tree)
	if err != nil {
		return fmt.Errorf("mapping the process tree: %w", err)
	}
	s.mem = mem
	s.words = unsafe.Slice((*uint64)(unsafe.Pointer(&mem[0])), n)
	queue := []int{s.root.pid}
	for len(queue) > 0 {
		pid := queue[0]
		queue = queue[1:]
		i, bit := s.layout.at(pid)
		if i >= n {
			return fmt.Errorf("process %d is above pid_max as read at attach", pid)
		}
		if !s.hold(pid) {
			continue // gone already
		}
		atomic.OrUint64(&s.words[i], bit)
		kids, err := children(pid)
		if err != nil {
			return err
		}
		queue = append(queue, kids...)
	}
	if s.member(os.Getpid()) {
		// The kill would take stallmon down before it confirmed it.
		return fmt.Errorf("stallmon itself is in the tree of %d: watch a process that is not its ancestor: %w", s.root.pid, ErrNotProcess)
	}
	s.reap()
	return nil
}

// children lists the children of pid, from each of its threads' children
// file (threads fork too). A process gone meanwhile has none.
func children(pid int) ([]int, error) {
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return nil, nil
	}
	var out []int
	for _, t := range tasks {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/children", pid, t.Name()))
		if errors.Is(err, os.ErrNotExist) {
			if _, serr := os.Stat(fmt.Sprintf("/proc/%d/task/%s", pid, t.Name())); serr != nil {
				continue // the thread is gone
			}
			return nil, fmt.Errorf("no /proc/PID/task/TID/children (CONFIG_PROC_CHILDREN): --tree cannot find descendants: %w", err)
		}
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(string(b)) {
			if c, err := strconv.Atoi(f); err == nil {
				out = append(out, c)
			}
		}
	}
	return out, nil
}

// hold opens and keeps a pidfd for pid; false if it is gone.
func (s *treeScope) hold(pid int) bool {
	s.heldMu.Lock()
	defer s.heldMu.Unlock()
	if _, ok := s.held[pid]; ok {
		return true
	}
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return false
	}
	s.held[pid] = fd
	return true
}

// reap clears the bits of held processes whose pidfd turned readable
// (they exited: their pid may be reused once they are reaped) and lets
// their pidfds go. It reports how many held processes are still there.
func (s *treeScope) reap() int {
	s.heldMu.Lock()
	defer s.heldMu.Unlock()
	if len(s.held) == 0 {
		return 0
	}
	pids := make([]int, 0, len(s.held))
	fds := make([]unix.PollFd, 0, len(s.held))
	for pid, fd := range s.held {
		pids = append(pids, pid)
		fds = append(fds, unix.PollFd{Fd: int32(fd), Events: unix.POLLIN})
	}
	if _, err := unix.Poll(fds, 0); err != nil {
		return len(s.held)
	}
	for i, f := range fds {
		if f.Revents == 0 {
			continue
		}
		pid := pids[i]
		if i, bit := s.layout.at(pid); i < len(s.words) {
			atomic.AndUint64(&s.words[i], ^bit)
		}
		unix.Close(int(f.Fd))
		delete(s.held, pid)
	}
	return len(s.held)
}

func (s *treeScope) refresh() { s.reap() }

func (s *treeScope) member(pid int) bool {
	i, bit := s.layout.at(pid)
	return i < len(s.words) && atomic.LoadUint64(&s.words[i])&bit != 0
}

// mapWords maps m, an mmapable array of words, shared with the kernel
// side, and returns the mapping (whole pages) and its number of words.
func mapWords(m *ebpf.Map) ([]byte, int, error) {
	n := int(m.MaxEntries())
	size := (n*8 + os.Getpagesize() - 1) &^ (os.Getpagesize() - 1)
	mem, err := unix.Mmap(m.FD(), 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	return mem, n, err
}

// treeWords sizes the tree map for every pid the kernel can hand out.
func treeWords(layout memberLayout) (uint32, error) {
	b, err := os.ReadFile("/proc/sys/kernel/pid_max")
	if err != nil {
		return 0, fmt.Errorf("reading pid_max: %w", err)
	}
	max, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || max <= 0 {
		return 0, fmt.Errorf("pid_max %q: %w", b, err)
	}
	return layout.words(max), nil
}

// members lists the tree's processes now.
func (s *treeScope) members() ([]int, error) {
	s.reap()
	return s.processes(nil)
}

func (s *treeScope) admitted() {}

// processes appends the processes whose bits are set to dst.
func (s *treeScope) processes(dst []int) ([]int, error) {
	if s.words == nil {
		return dst, errors.New("the process tree is not mapped")
	}
	for i := range s.words {
		dst = s.layout.appendPIDs(dst, i, atomic.LoadUint64(&s.words[i]))
	}
	return dst, nil
}

// wait returns once the root has exited, no member is left and every
// held process is gone for good (its files closed, its pidfd readable).
// After a kill, members forked meanwhile are killed at each look.
func (s *treeScope) wait() error {
	if !s.guard.enter() {
		return ErrClosed
	}
	defer s.guard.leave()
	if err := s.root.waitExit(); err != nil {
		return err
	}
	t := time.NewTicker(treePoll)
	defer t.Stop()
	for {
		pids, err := s.members()
		if err != nil {
			return err
		}
		if len(pids) == 0 && s.reap() == 0 {
			return nil
		}
		if len(pids) > 0 && s.killing.Load() {
			s.signal(unix.SIGKILL)
		}
		select {
		case <-s.stop:
			return ErrClosed
		case <-t.C:
		}
	}
}

// signal sends sig to every member through a pidfd, which is then held
// until the process is gone. A pid still in the tree once its pidfd is
// open is a member's: a member's bit is cleared before it can be reaped
// and its pid reused.
func (s *treeScope) signal(sig unix.Signal) error {
	if sig == unix.SIGKILL {
		s.killing.Store(true)
	}
	pids, err := s.members()
	if err != nil {
		return err
	}
	var errs []error
	for _, pid := range pids {
		if !s.hold(pid) || !s.member(pid) {
			continue
		}
		s.heldMu.Lock()
		fd, ok := s.held[pid]
		if ok {
			if err := unix.PidfdSendSignal(fd, sig, nil, 0); err != nil && !errors.Is(err, unix.ESRCH) {
				errs = append(errs, fmt.Errorf("sending %s to %d: %w", unix.SignalName(sig), pid, err))
			}
		}
		s.heldMu.Unlock()
	}
	return errors.Join(errs...)
}

// close ends wait, lets it return, and only then unmaps the bitmap it
// reads and lets the held pidfds go.
func (s *treeScope) close() error {
	return s.guard.close(func() error {
		close(s.stop)
		return s.root.close() // ends wait's wait for the root
	}, func() error {
		s.heldMu.Lock()
		for pid, fd := range s.held {
			unix.Close(fd)
			delete(s.held, pid)
		}
		s.heldMu.Unlock()
		if s.mem == nil {
			return nil
		}
		err := unix.Munmap(s.mem)
		s.mem, s.words = nil, nil
		if err != nil {
			return fmt.Errorf("unmapping the process tree: %w", err)
		}
		return nil
	})
}
