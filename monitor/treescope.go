package monitor

import (
	"errors"
	"fmt"
	"log/slog"
	"math/bits"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/stallmon/stallmon/gen"
)

// treeScope is a process and all its descendants, including those forked
// after attach: the kernel side keeps their tgids as bits of its tree map,
// setting each child's of a member at fork and clearing a member's when its
// last thread exits. Userspace shares the bitmap through mmap and changes
// it only with atomic operations, as the kernel side does.
type treeScope struct {
	root  *target
	mem   []byte   // the tree map, mapped by seed
	words []uint64 // mem as words: bit tgid%64 of word tgid/64

	mu       sync.Mutex
	closed   bool
	waiting  bool
	stop     chan struct{}
	waitDone chan struct{}
}

// treePoll is how often wait looks at the tree once the root has exited
// (its descendants may live on): the bitmap has no notification.
const treePoll = 50 * time.Millisecond

// AttachTree watches pid and all its descendants, present and future.
func AttachTree(pid int, log *slog.Logger, opts Options) (*Monitor, error) {
	root, err := openTarget(pid)
	if err != nil {
		return nil, err
	}
	return attachScope(&treeScope{root: root, stop: make(chan struct{}), waitDone: make(chan struct{})}, log, opts)
}

func (s *treeScope) configure(spec *ebpf.CollectionSpec) error {
	if err := spec.Variables[gen.StallmonVarTargetTree].Set(true); err != nil {
		return fmt.Errorf("setting tree mode: %w", err)
	}
	return nil
}

func (s *treeScope) leader() int  { return s.root.pid }
func (s *treeScope) single() bool { return false }

// seed enters the root and every descendant /proc shows now. The fork
// program is attached already, so a process forked during the walk is
// entered by one or the other.
func (s *treeScope) seed(objs *gen.StallmonObjects) error {
	n := int(objs.Tree.MaxEntries())
	size := (n*8 + os.Getpagesize() - 1) &^ (os.Getpagesize() - 1)
	mem, err := unix.Mmap(objs.Tree.FD(), 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return fmt.Errorf("mapping the process tree: %w", err)
	}
	s.mem = mem
	s.words = unsafe.Slice((*uint64)(unsafe.Pointer(&mem[0])), n)
	for _, pid := range append([]int{s.root.pid}, descendants(s.root.pid)...) {
		if pid/64 >= n {
			return fmt.Errorf("process %d is above pid_max as read at attach", pid)
		}
		atomic.OrUint64(&s.words[pid/64], 1<<(pid%64))
	}
	return nil
}

// treeWords sizes the tree bitmap for every pid the kernel can hand out.
func treeWords() (uint32, error) {
	b, err := os.ReadFile("/proc/sys/kernel/pid_max")
	if err != nil {
		return 0, fmt.Errorf("reading pid_max: %w", err)
	}
	max, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || max <= 0 {
		return 0, fmt.Errorf("pid_max %q: %w", b, err)
	}
	return uint32(max/64 + 1), nil
}

func (s *treeScope) member(pid int) bool {
	return pid/64 < len(s.words) && atomic.LoadUint64(&s.words[pid/64])&(1<<(pid%64)) != 0
}

// descendants lists the processes below pid, from each task's children
// file (/proc/PID/task/TID/children, threads fork too).
func descendants(pid int) []int {
	var out []int
	queue := []int{pid}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", p))
		if err != nil {
			continue // gone: its children were reparented, or are gone
		}
		for _, t := range tasks {
			b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/children", p, t.Name()))
			if err != nil {
				continue
			}
			for _, f := range strings.Fields(string(b)) {
				if c, err := strconv.Atoi(f); err == nil {
					out = append(out, c)
					queue = append(queue, c)
				}
			}
		}
	}
	return out
}

// members lists the tree's processes now.
func (s *treeScope) members() ([]int, error) {
	if s.words == nil {
		return nil, errors.New("the process tree is not mapped")
	}
	var pids []int
	for i := range s.words {
		w := atomic.LoadUint64(&s.words[i])
		for w != 0 {
			b := bits.TrailingZeros64(w)
			pids = append(pids, i*64+b)
			w &^= 1 << b
		}
	}
	return pids, nil
}

// wait returns once the root has exited and no member is left.
func (s *treeScope) wait() error {
	s.mu.Lock()
	if s.closed || s.waiting {
		s.mu.Unlock()
		return ErrClosed
	}
	s.waiting = true
	s.mu.Unlock()
	defer close(s.waitDone)
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
		if len(pids) == 0 {
			return nil
		}
		select {
		case <-s.stop:
			return ErrClosed
		case <-t.C:
		}
	}
}

// signal sends sig to every member through a pidfd. A member that exits
// is dropped from the tree before it can be reaped and its pid reused, so
// a pid still in the tree once its pidfd is open is the member's.
func (s *treeScope) signal(sig unix.Signal) error {
	pids, err := s.members()
	if err != nil {
		return err
	}
	var errs []error
	for _, pid := range pids {
		fd, err := unix.PidfdOpen(pid, 0)
		if errors.Is(err, unix.ESRCH) {
			continue
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("pidfd of %d: %w", pid, err))
			continue
		}
		if s.member(pid) {
			if err := unix.PidfdSendSignal(fd, sig, nil, 0); err != nil && !errors.Is(err, unix.ESRCH) {
				errs = append(errs, fmt.Errorf("sending %s to %d: %w", unix.SignalName(sig), pid, err))
			}
		}
		unix.Close(fd)
	}
	return errors.Join(errs...)
}

// close ends wait, lets it return, and only then unmaps the bitmap it
// reads.
func (s *treeScope) close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	close(s.stop)
	err := s.root.close() // ends wait's wait for the root
	if s.waiting {
		<-s.waitDone
	}
	if s.mem != nil {
		if uerr := unix.Munmap(s.mem); uerr != nil && err == nil {
			err = fmt.Errorf("unmapping the process tree: %w", uerr)
		}
		s.mem, s.words = nil, nil
	}
	return err
}
