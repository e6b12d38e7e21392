package monitor

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/stallmon/stallmon/gen"
)

// treeScope is a process and all its descendants, including those forked
// after attach: the kernel side keeps their tgids in its tree map, adding
// each child of a member at fork and dropping a member when its last
// thread exits.
type treeScope struct {
	root *target
	tree *ebpf.Map // set by seed

	stop     chan struct{}
	stopOnce sync.Once
}

// treePoll is how often wait looks at the tree once the root has exited
// (its descendants may live on): the map has no notification.
const treePoll = 50 * time.Millisecond

// AttachTree watches pid and all its descendants, present and future.
func AttachTree(pid int, log *slog.Logger, opts Options) (*Monitor, error) {
	root, err := openTarget(pid)
	if err != nil {
		return nil, err
	}
	return attachScope(&treeScope{root: root, stop: make(chan struct{})}, log, opts)
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
	s.tree = objs.Tree
	for _, pid := range append([]int{s.root.pid}, descendants(s.root.pid)...) {
		if err := s.tree.Update(uint32(pid), uint8(1), ebpf.UpdateAny); err != nil {
			return fmt.Errorf("entering process %d in the tree: %w", pid, err)
		}
	}
	return nil
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
	var pids []int
	var k uint32
	var v uint8
	it := s.tree.Iterate()
	for it.Next(&k, &v) {
		pids = append(pids, int(k))
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("reading the process tree: %w", err)
	}
	return pids, nil
}

// wait returns once the root has exited and no member is left.
func (s *treeScope) wait() error {
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
		var v uint8
		if s.tree.Lookup(uint32(pid), &v) == nil {
			if err := unix.PidfdSendSignal(fd, sig, nil, 0); err != nil && !errors.Is(err, unix.ESRCH) {
				errs = append(errs, fmt.Errorf("sending %s to %d: %w", unix.SignalName(sig), pid, err))
			}
		}
		unix.Close(fd)
	}
	return errors.Join(errs...)
}

func (s *treeScope) close() error {
	s.stopOnce.Do(func() { close(s.stop) })
	return s.root.close()
}
