package listenq

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"unsafe"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/stallmon/stallmon/internal/bpfiter"
	"github.com/stallmon/stallmon/internal/listenq/gen"
)

// Scanner reads the listening sockets of a set of processes.
type Scanner struct {
	objs gen.ListenqObjects
	// filter is set when the kernel limits an iterator to one process
	// (Linux 6.1): one walk per process instead of one over the host.
	filter  bool
	entered map[uint32]bool
	// connected is what the program was last told to report.
	connected bool
	buf       bytes.Buffer
}

var recSize = int(unsafe.Sizeof(gen.ListenqListenRec{}))

// Open loads the program. Close releases it. Where the kernel charges BPF
// memory to RLIMIT_MEMLOCK (before 5.11) the caller has lifted it:
// stallmon opens the scanner after the tracker's attach, which does.
func Open() (*Scanner, error) {
	s := &Scanner{entered: map[uint32]bool{}}
	if err := gen.LoadListenqObjects(&s.objs, nil); err != nil {
		return nil, fmt.Errorf("loading listener objects: %w", err)
	}
	filter, err := bpfiter.HasFilter(s.objs.Listeners)
	if err != nil {
		s.objs.Close()
		return nil, err
	}
	s.filter = filter
	return s, nil
}

// Close releases the program and its map.
func (s *Scanner) Close() error { return s.objs.Close() }

// PidFiltered reports whether each walk covers one process, not the host.
func (s *Scanner) PidFiltered() bool { return s.filter }

// Scan returns the listening sockets held by pids, each socket once; with
// connected, also their connected TCP sockets that hold data a read
// would return (not MPTCP; not unix or UDP, which have no mark that moves
// with every read).
func (s *Scanner) Scan(pids []int, connected bool) ([]Listener, error) {
	s.buf.Reset()
	if connected != s.connected {
		var v uint8
		if connected {
			v = 1
		}
		if err := s.objs.WantConnected.Set(v); err != nil {
			return nil, fmt.Errorf("telling the listener program to report connected sockets: %w", err)
		}
		s.connected = connected
	}
	if s.filter {
		// One process per walk, so the targets map holds that one alone:
		// no scope is too big for it.
		for _, pid := range pids {
			if err := s.enter([]int{pid}); err != nil {
				return nil, err
			}
			if err := s.walk(pid, true); err != nil {
				return nil, err
			}
		}
	} else {
		// Each walk covers the host: a scope bigger than the map takes
		// one walk per map-full of processes.
		for chunk := range slices.Chunk(pids, int(s.objs.Targets.MaxEntries())) {
			if err := s.enter(chunk); err != nil {
				return nil, err
			}
			if err := s.walk(0, false); err != nil {
				return nil, err
			}
		}
	}
	b := s.buf.Bytes()
	if len(b)%recSize != 0 {
		return nil, fmt.Errorf("listener records: %d bytes is no whole number of %d-byte records", len(b), recSize)
	}
	var out []Listener
	seen := map[uint64]int{} // inode -> index in out
	for ; len(b) > 0; b = b[recSize:] {
		// A copy of the kernel's bytes: the Go type has the C layout
		// (structs.HostLayout), and reflection (binary.Decode) cost more
		// than the walk itself at thousands of sockets.
		var r gen.ListenqListenRec
		copy(unsafe.Slice((*byte)(unsafe.Pointer(&r)), recSize), b[:recSize])
		if i, ok := seen[r.Ino]; ok {
			out[i].held(int(r.Tgid))
			continue
		}
		seen[r.Ino] = len(out)
		out = append(out, decode(&r))
	}
	return out, nil
}

// enter makes the program's targets exactly pids. Departed processes go
// first, so a scope that changed a lot between two scans never finds the
// map full of processes that are gone.
func (s *Scanner) enter(pids []int) error {
	now := make(map[uint32]bool, len(pids))
	for _, pid := range pids {
		now[uint32(pid)] = true
	}
	for tgid := range s.entered {
		if now[tgid] {
			continue
		}
		if err := s.objs.Targets.Delete(tgid); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return fmt.Errorf("forgetting process %d: %w", tgid, err)
		}
		delete(s.entered, tgid)
	}
	for tgid := range now {
		if s.entered[tgid] {
			continue
		}
		if err := s.objs.Targets.Put(tgid, uint8(1)); err != nil {
			return fmt.Errorf("entering process %d: %w", tgid, err)
		}
		s.entered[tgid] = true
	}
	return nil
}

// walk runs the iterator once, over pid's files or the host's, into buf.
func (s *Scanner) walk(pid int, filter bool) error {
	it, err := bpfiter.Link(s.objs.Listeners, pid, filter)
	if errors.Is(err, unix.ESRCH) {
		return nil // exited since the snapshot: it holds nothing now
	}
	if err != nil {
		return err
	}
	defer it.Close()
	rd, err := it.Open()
	if err != nil {
		return fmt.Errorf("opening the listener iterator: %w", err)
	}
	defer rd.Close()
	// The kernel ends a read with EAGAIN once it has passed a million
	// files without a record, keeping its place: read on, or a host (or
	// a process) with that many files would fail every scan for good.
	chunk := make([]byte, 64<<10)
	for {
		n, err := rd.Read(chunk)
		s.buf.Write(chunk[:n])
		switch {
		case errors.Is(err, io.EOF):
			return nil
		case errors.Is(err, unix.EAGAIN):
		case err != nil:
			return fmt.Errorf("reading the listener iterator: %w", err)
		}
	}
}
