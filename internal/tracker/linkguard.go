package tracker

import (
	"bytes"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"
)

// A root process can take any BPF link by its id (BPF_LINK_GET_FD_BY_ID)
// and change it. The kernel refuses BPF_LINK_DETACH and BPF_LINK_UPDATE on
// raw tracepoint links, and BPF_LINK_DETACH on iterator links, but it
// lets BPF_LINK_UPDATE put another task iterator program behind the
// snapshot link: snapshots would then say whatever that program writes.
// So after each snapshot the tracker asks the kernel what every link it
// made runs, and reports any change, for good.

// TamperError says that a link the tracker made was changed from outside.
// Once one is returned, VerifyLinks returns it for the rest of the
// tracker's life, whatever happens to the link afterwards: what the
// tracker saw in between cannot be trusted, and only a new attach makes
// new links.
type TamperError struct {
	Link   string // "raw tracepoint sys_enter", "task iterator"
	LinkID uint32
	Change string // what differs from what the tracker attached
}

func (e *TamperError) Error() string {
	return fmt.Sprintf("tracker link changed from outside: %s (link %d) %s", e.Link, e.LinkID, e.Change)
}

// linkGuard holds what each link of the tracker must still be.
type linkGuard struct {
	links    []*guardedLink
	tampered *TamperError
	// progIDs caches each program's id: a tree's or a cgroup's iterators
	// come and go with its processes, all running one program.
	progIDs map[*ebpf.Program]uint32
}

type guardedLink struct {
	what   string
	fd     int // the link's, which the Tracker owns and closes
	id     uint32
	typ    uint32
	progID uint32
	attach string // tracepoint name, or the iterator's target
	name   [64]byte
}

// linkInfo is the head of struct bpf_link_info with the name fields that
// raw tracepoint and iterator links share (tp_name, target_name). Kernels
// whose struct is larger copy only this much; those whose struct is
// smaller (5.15's is 32 bytes, as this one) accept a zero tail.
type linkInfo struct {
	typ, id, progID uint32
	_               uint32
	name            uint64
	nameLen         uint32
	_               uint32
}

// watch records l, which runs prog at the attach point named attach, and
// checks that the kernel says so.
func (g *linkGuard) watch(what string, l link.Link, prog *ebpf.Program, attach string) error {
	withFD, ok := l.(interface{ FD() int })
	if !ok {
		return fmt.Errorf("%s: link has no file descriptor to check", what)
	}
	progID, err := g.progID(prog)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	gl := &guardedLink{what: what, fd: withFD.FD(), progID: progID, attach: attach}
	info, err := gl.read()
	if err != nil {
		return err
	}
	gl.id, gl.typ = info.id, info.typ
	if te := gl.compare(info); te != nil {
		return fmt.Errorf("checking the link just made: %w", te)
	}
	g.links = append(g.links, gl)
	return nil
}

func (g *linkGuard) progID(prog *ebpf.Program) (uint32, error) {
	if id, ok := g.progIDs[prog]; ok {
		return id, nil
	}
	pi, err := prog.Info()
	if err != nil {
		return 0, fmt.Errorf("reading program info: %w", err)
	}
	id, ok := pi.ID()
	if !ok {
		return 0, errors.New("the kernel does not report program ids")
	}
	if g.progIDs == nil {
		g.progIDs = map[*ebpf.Program]uint32{}
	}
	g.progIDs[prog] = uint32(id)
	return uint32(id), nil
}

// forget stops checking l, which the tracker is about to close.
func (g *linkGuard) forget(l link.Link) {
	withFD, ok := l.(interface{ FD() int })
	if !ok {
		return
	}
	g.links = slices.DeleteFunc(g.links, func(gl *guardedLink) bool { return gl.fd == withFD.FD() })
}

// verify checks the one watched link l now, as VerifyLinks checks them
// all.
func (g *linkGuard) verify(l link.Link) error {
	withFD, ok := l.(interface{ FD() int })
	if !ok {
		return errors.New("link has no file descriptor to check")
	}
	for _, gl := range g.links {
		if gl.fd == withFD.FD() {
			return g.check(gl)
		}
	}
	return errors.New("link not watched")
}

// check asks the kernel what gl is now, and keeps a change for good.
func (g *linkGuard) check(gl *guardedLink) error {
	info, err := gl.read()
	if err != nil {
		return err
	}
	if te := gl.compare(info); te != nil {
		g.tampered = te
		return te
	}
	return nil
}

// read asks the kernel what the link is now: one bpf(2) call.
func (gl *guardedLink) read() (linkInfo, error) {
	info := linkInfo{name: uint64(uintptr(unsafe.Pointer(&gl.name[0]))), nameLen: uint32(len(gl.name))}
	attr := struct {
		fd, infoLen uint32
		info        uint64
	}{fd: uint32(gl.fd), infoLen: uint32(unsafe.Sizeof(info)), info: uint64(uintptr(unsafe.Pointer(&info)))}
	_, _, errno := unix.Syscall(unix.SYS_BPF, unix.BPF_OBJ_GET_INFO_BY_FD, uintptr(unsafe.Pointer(&attr)), unsafe.Sizeof(attr))
	runtime.KeepAlive(&info)
	runtime.KeepAlive(gl)
	if errno != 0 {
		return linkInfo{}, fmt.Errorf("reading %s link info: %w", gl.what, errno)
	}
	return info, nil
}

// compare returns what differs between info and what was attached.
func (gl *guardedLink) compare(info linkInfo) *TamperError {
	te := &TamperError{Link: gl.what, LinkID: gl.id}
	name := gl.name[:]
	if i := bytes.IndexByte(name, 0); i >= 0 {
		name = name[:i]
	}
	switch {
	case info.id != gl.id || info.typ != gl.typ:
		te.Change = fmt.Sprintf("is now link %d of type %d, not link %d of type %d", info.id, info.typ, gl.id, gl.typ)
	case info.progID != gl.progID:
		te.Change = fmt.Sprintf("runs program %d, not the tracker's %d", info.progID, gl.progID)
	case string(name) != gl.attach:
		te.Change = fmt.Sprintf("is attached to %q, not %q", name, gl.attach)
	default:
		return nil
	}
	return te
}

// VerifyLinks checks that every link the tracker made still exists and
// runs the program the tracker loaded, at the attach point it chose: a
// *TamperError (for good, see there) if not. It costs one bpf(2) call per
// link. Call it after each Snapshot: a snapshot is only to be trusted
// when the VerifyLinks that follows it returns nil, which covers a change
// made before or while the iterator ran.
func (m *Tracker) VerifyLinks() error {
	unlock, err := m.holdOpen()
	if err != nil {
		return err
	}
	defer unlock()
	g := &m.guard
	if g.tampered != nil {
		return g.tampered
	}
	for _, gl := range g.links {
		if err := g.check(gl); err != nil {
			return err
		}
	}
	return nil
}
