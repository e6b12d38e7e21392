// Package linktamper plays, for tests, a root process that meddles with
// the BPF links of another process: it finds them as bpftool does, in
// /proc/PID/fdinfo, takes them by id (BPF_LINK_GET_FD_BY_ID) and asks the
// kernel to detach them or to run another program, through bpf(2) itself
// so that nothing in between refuses on the kernel's behalf.
package linktamper

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"golang.org/x/sys/unix"
)

// Link is a BPF link as /proc/PID/fdinfo shows it.
type Link struct {
	ID     uint32
	Type   string // "raw_tracepoint", "iter"...
	ProgID uint32
}

// Held returns the BPF links that process pid holds a file descriptor
// of, each once, by id.
func Held(pid int) ([]Link, error) {
	dir := fmt.Sprintf("/proc/%d/fdinfo", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("listing %s: %w", dir, err)
	}
	var out []Link
	for _, e := range ents {
		l, ok, err := parseFDInfo(filepath.Join(dir, e.Name()))
		if errors.Is(err, os.ErrNotExist) {
			continue // closed since the listing
		}
		if err != nil {
			return nil, err
		}
		if ok && !slices.ContainsFunc(out, func(o Link) bool { return o.ID == l.ID }) {
			out = append(out, l)
		}
	}
	slices.SortFunc(out, func(a, b Link) int { return int(a.ID) - int(b.ID) })
	return out, nil
}

// parseFDInfo reads one fdinfo file: ok when it is a BPF link's.
func parseFDInfo(path string) (l Link, ok bool, err error) {
	f, err := os.Open(path)
	if err != nil {
		return Link{}, false, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		key, val, found := strings.Cut(sc.Text(), ":")
		if !found {
			continue
		}
		val = strings.TrimSpace(val)
		switch key {
		case "link_type":
			l.Type = val
		case "link_id", "prog_id":
			n, err := strconv.ParseUint(val, 10, 32)
			if err != nil {
				return Link{}, false, fmt.Errorf("%s: %s %q: %w", path, key, val, err)
			}
			if key == "link_id" {
				l.ID = uint32(n)
			} else {
				l.ProgID = uint32(n)
			}
		}
	}
	if err := sc.Err(); err != nil {
		return Link{}, false, fmt.Errorf("reading %s: %w", path, err)
	}
	return l, l.Type != "" && l.ID != 0, nil
}

// Of returns the links of type typ among links.
func Of(links []Link, typ string) []Link {
	return slices.DeleteFunc(slices.Clone(links), func(l Link) bool { return l.Type != typ })
}

func bpf(cmd uintptr, attr unsafe.Pointer, size uintptr) (int, error) {
	r, _, errno := unix.Syscall(unix.SYS_BPF, cmd, uintptr(attr), size)
	if errno != 0 {
		return 0, errno
	}
	return int(r), nil
}

// Open takes the link with id: BPF_LINK_GET_FD_BY_ID, as any root process
// may. The caller closes the fd; the link's owner keeps its own.
func Open(id uint32) (int, error) {
	attr := struct{ id, nextID, openFlags uint32 }{id: id}
	fd, err := bpf(unix.BPF_LINK_GET_FD_BY_ID, unsafe.Pointer(&attr), unsafe.Sizeof(attr))
	if err != nil {
		return -1, fmt.Errorf("getting link %d by id: %w", id, err)
	}
	return fd, nil
}

// Detach asks the kernel to detach the link: BPF_LINK_DETACH.
func Detach(fd int) error {
	attr := struct{ linkFD uint32 }{uint32(fd)}
	_, err := bpf(unix.BPF_LINK_DETACH, unsafe.Pointer(&attr), unsafe.Sizeof(attr))
	return err
}

// Replace asks the kernel to run prog behind the link: BPF_LINK_UPDATE.
func Replace(fd int, prog *ebpf.Program) error {
	attr := struct{ linkFD, newProgFD, flags, oldProgFD uint32 }{linkFD: uint32(fd), newProgFD: uint32(prog.FD())}
	_, err := bpf(unix.BPF_LINK_UPDATE, unsafe.Pointer(&attr), unsafe.Sizeof(attr))
	return err
}

// emptyProgram returns 0 and writes nothing.
var emptyProgram = asm.Instructions{asm.Mov.Imm(asm.R0, 0), asm.Return()}

// DecoyTaskIterator loads a task iterator program that writes nothing:
// behind a snapshot link, every target looks like it has no thread.
func DecoyTaskIterator() (*ebpf.Program, error) {
	p, err := ebpf.NewProgram(&ebpf.ProgramSpec{Name: "decoy_iter", Type: ebpf.Tracing,
		AttachType: ebpf.AttachTraceIter, AttachTo: "task", Instructions: emptyProgram, License: "GPL"})
	if err != nil {
		return nil, fmt.Errorf("loading decoy task iterator: %w", err)
	}
	return p, nil
}

// DecoyRawTracepoint loads a raw tracepoint program that does nothing.
func DecoyRawTracepoint() (*ebpf.Program, error) {
	p, err := ebpf.NewProgram(&ebpf.ProgramSpec{Name: "decoy_raw_tp", Type: ebpf.RawTracepoint,
		Instructions: emptyProgram, License: "GPL"})
	if err != nil {
		return nil, fmt.Errorf("loading decoy raw tracepoint program: %w", err)
	}
	return p, nil
}
