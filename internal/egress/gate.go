package egress

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"

	"github.com/stallmon/stallmon/internal/cgroup"
	"github.com/stallmon/stallmon/internal/egress/gen"
	"github.com/stallmon/stallmon/internal/event"
)

// DefaultPinDir is where the gates' links are pinned, one directory per
// node id.
const DefaultPinDir = "/sys/fs/bpf/stallmon/egress"

const maxDests = int(gen.EgressEgressLimitsMAX_DESTS)

// Scope is whose packets are gated.
type Scope struct {
	// Cgroup is a cgroup v2 directory: every socket made in it or below
	// is the service's. The program is attached there.
	Cgroup string
	// PID is the service's process (with its descendants when Tree):
	// the program is attached at the cgroup root and gates only the
	// sockets found in their file tables.
	PID  int
	Tree bool
}

// Options configures a Gate.
type Options struct {
	Dests  []Dest
	NodeID string
	// PinDir is a directory on a BPF file system; "" is DefaultPinDir.
	PinDir string
	// ReleaseOnExit detaches the gate at Close; otherwise it stays
	// pinned, and closed once its deadline passes.
	ReleaseOnExit bool
	// Rescan is how often a --pid/--tree target's sockets are looked
	// for; a socket it opens is gated from the next scan on.
	Rescan time.Duration
	Logger *slog.Logger
}

// Gate is one attached egress gate.
type Gate struct {
	opts    Options
	objs    gen.EgressObjects
	link    link.Link
	sock    []sockLink // the socket hooks of a --pid/--tree gate
	pinPath string
	dests   string // for the events
	owner   *owner // nil in a cgroup scope

	mu     sync.Mutex
	open   bool      // what the agent last said
	until  time.Time // when that opening lapses
	failed bool      // a deadline write failed; logged once
	// scanFailures counts the rescans that could not enter every socket
	// of the service: some may pass the gate shut.
	scanFailures atomic.Uint64
	// releasable is set by AllowRelease: the stop ended so that
	// ReleaseOnExit may remove the gate.
	releasable bool
	stop       chan struct{}
	done       chan struct{}
}

// Open loads the program, attaches it for scope (or takes over the link a
// previous stallmon pinned for the same node id) and pins it. The gate
// starts closed: nothing passes until the first Vouch.
func Open(opts Options, scope Scope) (_ *Gate, err error) {
	if len(opts.Dests) == 0 {
		return nil, errors.New("egress gate: no destination")
	}
	if len(opts.Dests) > maxDests {
		return nil, fmt.Errorf("egress gate: %d destinations, at most %d", len(opts.Dests), maxDests)
	}
	if opts.NodeID == "" {
		return nil, errors.New("egress gate: no node id")
	}
	if opts.PinDir == "" {
		opts.PinDir = DefaultPinDir
	}
	if opts.Rescan <= 0 {
		opts.Rescan = time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	cgPath := scope.Cgroup
	if cgPath != "" {
		d, err := cgroup.Open(cgPath)
		if err != nil {
			return nil, fmt.Errorf("egress gate: %w", err)
		}
		cgPath = d.Path
	} else {
		if scope.PID <= 0 {
			return nil, errors.New("egress gate: no target")
		}
		if cgPath, err = cgroup.Root(); err != nil {
			return nil, fmt.Errorf("egress gate: %w", err)
		}
	}
	dir, err := pinDir(opts.PinDir, opts.NodeID)
	if err != nil {
		return nil, err
	}
	spec, err := gen.LoadEgress()
	if err != nil {
		return nil, fmt.Errorf("egress gate: loading spec: %w", err)
	}
	if scope.Cgroup == "" {
		if err := spec.Variables["match_cookies"].Set(uint8(1)); err != nil {
			return nil, fmt.Errorf("egress gate: %w", err)
		}
	}
	g := &Gate{opts: opts, pinPath: filepath.Join(dir, "link"), stop: make(chan struct{}), done: make(chan struct{})}
	var names []string
	for _, d := range opts.Dests {
		names = append(names, d.String())
	}
	g.dests = strings.Join(names, ",")
	if err := spec.LoadAndAssign(&g.objs, nil); err != nil {
		return nil, fmt.Errorf("egress gate: loading objects: %+v", err)
	}
	defer func() {
		if err != nil {
			g.objs.Close()
		}
	}()
	if err := g.fillDests(); err != nil {
		return nil, err
	}
	if scope.Cgroup == "" {
		g.owner = newOwner(scope.PID, scope.Tree, g.objs.Owned, g.objs.Targets)
		// The target's processes, then the socket hooks, then the scan,
		// then the gate: a socket the service creates at any point is
		// known before the gate judges its packets.
		if err := g.owner.enterTargets([]int{scope.PID}); err != nil {
			return nil, fmt.Errorf("egress gate: %w", err)
		}
		defer func() {
			if err != nil {
				g.closeSockLinks()
			}
		}()
		if err := g.attachSockHooks(dir, cgPath); err != nil {
			return nil, err
		}
		if err := g.owner.scan(); err != nil {
			return nil, fmt.Errorf("egress gate: finding the target's sockets: %w", err)
		}
	}
	if err := g.attach(cgPath); err != nil {
		return nil, err
	}
	if g.owner == nil {
		// A previous --pid/--tree gate's hooks, for the node now gated
		// by cgroup, would only feed a map no program reads.
		if err := retireSockHooks(dir); err != nil {
			g.opts.Logger.Warn(event.EgressFailed, "dest", g.dests, "err", fmt.Errorf("egress gate: %w", err))
		}
	}
	if g.owner != nil {
		go g.rescan()
	} else {
		close(g.done)
	}
	return g, nil
}

// CheckPinDir refuses a pin directory that is not on a BPF file system,
// before anything is loaded.
func CheckPinDir(dir string) error {
	if dir == "" {
		dir = DefaultPinDir
	}
	return onBPFFS(dir)
}

// ErrNotPinned is Release finding no gate for the node.
var ErrNotPinned = errors.New("no egress gate pinned")

// pinDir makes node's directory under root, which must be on a BPF file
// system.
func pinDir(root, node string) (string, error) {
	if err := onBPFFS(root); err != nil {
		return "", err
	}
	dir := filepath.Join(root, url.PathEscape(node))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("egress gate: %w", err)
	}
	return dir, nil
}

// onBPFFS checks that dir, or its nearest existing parent, is on a BPF
// file system: a pin anywhere else fails, or is lost at reboot unseen.
func onBPFFS(dir string) error {
	p := dir
	for {
		var st unix.Statfs_t
		err := unix.Statfs(p, &st)
		if err == nil {
			if st.Type != unix.BPF_FS_MAGIC {
				return fmt.Errorf("--gate-egress-pin-dir %s is not on a BPF file system (mount one: mount -t bpf bpf /sys/fs/bpf)", dir)
			}
			return nil
		}
		if !errors.Is(err, unix.ENOENT) || p == "/" {
			return fmt.Errorf("egress gate: %s: %w", p, err)
		}
		p = filepath.Dir(p)
	}
}

// fillDests enters each destination.
func (g *Gate) fillDests() error {
	for i, d := range g.opts.Dests {
		k := gen.EgressDest{Family: 4, Proto: protoNumber(d.Proto), Port: netOrder(d.Port)}
		if d.Addr.Is6() {
			k.Family = 6
		}
		b := d.Addr.AsSlice()
		copy(k.Addr[:], b)
		if err := g.objs.Dests.Put(k, uint32(i)); err != nil {
			return fmt.Errorf("egress gate: entering %s: %w", d, err)
		}
	}
	return nil
}

// netOrder is port as the program reads it from the packet: network byte
// order, loaded as a native integer.
func netOrder(port uint16) uint16 {
	return binary.NativeEndian.Uint16(binary.BigEndian.AppendUint16(nil, port))
}

// attach takes over the link pinned for this node when it gates the same
// cgroup (its program replaced in one step: no packet goes unjudged), or
// attaches a new one and retires the old.
func (g *Gate) attach(cgPath string) error {
	var cgID uint64
	var st unix.Stat_t
	if err := unix.Stat(cgPath, &st); err != nil {
		return fmt.Errorf("egress gate: %s: %w", cgPath, err)
	}
	cgID = st.Ino
	old, err := link.LoadPinnedLink(g.pinPath, nil)
	switch {
	case errors.Is(err, os.ErrNotExist):
		old = nil
	case err != nil:
		return fmt.Errorf("egress gate: opening the pinned gate %s: %w", g.pinPath, err)
	}
	if old != nil {
		info, ierr := old.Info()
		if ierr == nil && info.Cgroup() != nil && info.Cgroup().CgroupId == cgID {
			// The old program's deadline goes on in the new one: a
			// stallmon restarted after LEAVING, the gate still open
			// on its predecessor's last poll, must not shut it for
			// the time its first poll takes (a peer would take over
			// a healthy service). It lapses as it would have.
			left, cerr := g.carryDeadline(info)
			if cerr != nil {
				// Fail closed: the new gate starts shut.
				g.opts.Logger.Warn(event.EgressFailed, "dest", g.dests, "err", cerr)
			}
			if err := old.Update(g.objs.GateEgress); err != nil {
				old.Close()
				return fmt.Errorf("egress gate: taking over %s: %w", g.pinPath, err)
			}
			g.link = old
			g.opts.Logger.Info(event.EgressAttached, "dest", g.dests, "pin", g.pinPath, "cgroup", cgPath, "taken_over", true,
				"open_seconds", left.Seconds())
			return nil
		}
	}
	l, err := link.AttachCgroup(link.CgroupOptions{Path: cgPath, Attach: ebpf.AttachCGroupInetEgress, Program: g.objs.GateEgress})
	if err != nil {
		if old != nil {
			old.Close()
		}
		return fmt.Errorf("egress gate: attaching to %s: %w", cgPath, err)
	}
	if old != nil {
		// The old link gated another cgroup (a previous run's): it is
		// released once the new one holds the pin.
		if err := old.Unpin(); err != nil {
			l.Close()
			old.Close()
			return fmt.Errorf("egress gate: retiring %s: %w", g.pinPath, err)
		}
		defer old.Close()
	}
	if err := l.Pin(g.pinPath); err != nil {
		l.Close()
		return fmt.Errorf("egress gate: pinning %s: %w", g.pinPath, err)
	}
	g.link = l
	g.opts.Logger.Info(event.EgressAttached, "dest", g.dests, "pin", g.pinPath, "cgroup", cgPath, "taken_over", old != nil)
	return nil
}

// carryDeadline copies the deadline of the program behind the link
// described by info into this gate's, and returns how long it still
// keeps the gate open (0 when it has passed).
func (g *Gate) carryDeadline(info *link.Info) (time.Duration, error) {
	prog, err := ebpf.NewProgramFromID(info.Program)
	if err != nil {
		return 0, fmt.Errorf("egress gate: opening the old program %d: %w", info.Program, err)
	}
	defer prog.Close()
	pinfo, err := prog.Info()
	if err != nil {
		return 0, fmt.Errorf("egress gate: reading the old program: %w", err)
	}
	ids, ok := pinfo.MapIDs()
	if !ok {
		return 0, errors.New("egress gate: the kernel does not list the old program's maps")
	}
	for _, id := range ids {
		m, err := ebpf.NewMapFromID(id)
		if err != nil {
			return 0, fmt.Errorf("egress gate: opening the old program's map %d: %w", id, err)
		}
		minfo, err := m.Info()
		if err != nil || minfo.Name != "deadline" || minfo.Type != ebpf.Array || minfo.ValueSize != 8 {
			m.Close()
			continue
		}
		var until uint64
		err = m.Lookup(uint32(0), &until)
		m.Close()
		if err != nil {
			return 0, fmt.Errorf("egress gate: reading the old deadline: %w", err)
		}
		if err := g.objs.Deadline.Put(uint32(0), until); err != nil {
			return 0, fmt.Errorf("egress gate: carrying the old deadline: %w", err)
		}
		now := monoNow()
		if until <= now {
			return 0, nil
		}
		left := time.Duration(until - now)
		g.mu.Lock()
		g.open, g.until = true, time.Now().Add(left)
		g.mu.Unlock()
		return left, nil
	}
	return 0, errors.New("egress gate: the old program has no deadline map")
}

// sockHooks are the programs that keep a --pid/--tree gate's socket set
// as the service makes and closes sockets, each pinned beside the gate's
// link under its name, so that they outlive stallmon with the gate.
var sockHooks = []struct {
	name   string
	attach ebpf.AttachType
	prog   func(*gen.EgressObjects) *ebpf.Program
}{
	{"sock_create", ebpf.AttachCGroupInetSockCreate, func(o *gen.EgressObjects) *ebpf.Program { return o.OwnSockCreate }},
	{"sock_release", ebpf.AttachCgroupInetSockRelease, func(o *gen.EgressObjects) *ebpf.Program { return o.OwnSockRelease }},
}

type sockLink struct {
	link link.Link
	pin  string
}

// attachSockHooks attaches the socket hooks at cgPath, taking over the
// links a previous stallmon pinned for the node in dir when they hook
// the same cgroup.
func (g *Gate) attachSockHooks(dir, cgPath string) error {
	for _, h := range sockHooks {
		pin := filepath.Join(dir, h.name)
		l, err := attachPinned(pin, cgPath, h.attach, h.prog(&g.objs))
		if err != nil {
			return err
		}
		g.sock = append(g.sock, sockLink{link: l, pin: pin})
	}
	return nil
}

// retireSockHooks unpins the socket hooks pinned in dir, if any.
func retireSockHooks(dir string) error {
	for _, h := range sockHooks {
		hp := filepath.Join(dir, h.name)
		hl, err := link.LoadPinnedLink(hp, nil)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("opening the pinned hook %s: %w", hp, err)
		}
		err = hl.Unpin()
		hl.Close()
		if err != nil {
			return fmt.Errorf("unpinning %s: %w", hp, err)
		}
	}
	return nil
}

func (g *Gate) closeSockLinks() {
	for _, s := range g.sock {
		s.link.Close()
	}
	g.sock = nil
}

// attachPinned attaches prog at cgPath through the link pinned at pin:
// its program replaced when it hooks the same cgroup, else a new link
// pinned there, the old one retired.
func attachPinned(pin, cgPath string, typ ebpf.AttachType, prog *ebpf.Program) (link.Link, error) {
	var st unix.Stat_t
	if err := unix.Stat(cgPath, &st); err != nil {
		return nil, fmt.Errorf("egress gate: %s: %w", cgPath, err)
	}
	old, err := link.LoadPinnedLink(pin, nil)
	switch {
	case errors.Is(err, os.ErrNotExist):
		old = nil
	case err != nil:
		return nil, fmt.Errorf("egress gate: opening the pinned hook %s: %w", pin, err)
	}
	if old != nil {
		info, ierr := old.Info()
		if ierr == nil && info.Cgroup() != nil && info.Cgroup().CgroupId == st.Ino {
			if err := old.Update(prog); err != nil {
				old.Close()
				return nil, fmt.Errorf("egress gate: taking over %s: %w", pin, err)
			}
			return old, nil
		}
		defer old.Close()
		if err := old.Unpin(); err != nil {
			return nil, fmt.Errorf("egress gate: retiring %s: %w", pin, err)
		}
	}
	l, err := link.AttachCgroup(link.CgroupOptions{Path: cgPath, Attach: typ, Program: prog})
	if err != nil {
		return nil, fmt.Errorf("egress gate: attaching %s to %s: %w", filepath.Base(pin), cgPath, err)
	}
	if err := l.Pin(pin); err != nil {
		l.Close()
		return nil, fmt.Errorf("egress gate: pinning %s: %w", pin, err)
	}
	return l, nil
}

// Vouch opens the gate until until: the agent's latest poll is fresh and
// found the service alive.
func (g *Gate) Vouch(until time.Time) {
	now := time.Now()
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.open && now.After(g.until) {
		// It closed on its own: the agent was late to vouch again.
		g.opts.Logger.Warn(event.EgressClosed, "dest", g.dests, "reason", "deadline_passed",
			"closed_seconds", now.Sub(g.until).Seconds())
		g.open = false
	}
	if !g.setDeadline(monoNow() + uint64(until.Sub(now))) {
		return
	}
	if !g.open {
		g.opts.Logger.Info(event.EgressOpened, "dest", g.dests)
	}
	g.open = true
	g.until = until
}

// Shut closes the gate now; reason is the agent's state (stalled, blind,
// fenced, abandoned).
func (g *Gate) Shut(reason string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.setDeadline(0)
	if g.open {
		g.opts.Logger.Warn(event.EgressClosed, "dest", g.dests, "reason", reason)
	}
	g.open = false
}

func (g *Gate) setDeadline(ns uint64) bool {
	if err := g.objs.Deadline.Put(uint32(0), ns); err != nil {
		// The deadline in the kernel runs out on its own: closed.
		if !g.failed {
			g.opts.Logger.Error(event.EgressFailed, "dest", g.dests, "err", err)
		}
		g.failed = true
		return false
	}
	g.failed = false
	return true
}

func monoNow() uint64 {
	var ts unix.Timespec
	// CLOCK_MONOTONIC is what bpf_ktime_get_ns reads.
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		panic(fmt.Sprintf("clock_gettime(CLOCK_MONOTONIC): %v", err))
	}
	return uint64(ts.Nano())
}

// Stats is what the metrics export.
type Stats struct {
	// Open says whether the kernel lets the service's packets through now.
	Open    bool
	Dropped []DestDropped
	// ScanFailures counts the rescans of a --pid/--tree service's file
	// tables that failed (egress_scan_failed logs the first of a run).
	ScanFailures uint64
}

// DestDropped counts the packets held back on the way to one destination.
type DestDropped struct {
	Dest    string
	Packets uint64
}

// Stats reads the gate's state and counters from the kernel.
func (g *Gate) Stats() (Stats, error) {
	var until uint64
	if err := g.objs.Deadline.Lookup(uint32(0), &until); err != nil {
		return Stats{}, fmt.Errorf("egress gate: reading the deadline: %w", err)
	}
	st := Stats{Open: monoNow() < until, ScanFailures: g.scanFailures.Load()}
	for i, d := range g.opts.Dests {
		var per []uint64
		if err := g.objs.Dropped.Lookup(uint32(i), &per); err != nil {
			return Stats{}, fmt.Errorf("egress gate: reading the counters: %w", err)
		}
		var n uint64
		for _, v := range per {
			n += v
		}
		st.Dropped = append(st.Dropped, DestDropped{Dest: d.String(), Packets: n})
	}
	return st, nil
}

// AllowRelease says the run ended so that ReleaseOnExit may remove the
// gate at Close: on LEAVING (the service found healthy) or with the
// service gone. Without it the gate stays pinned whatever the flag: a
// stop on a stall or in silence must not let the service's heartbeat
// flow again.
func (g *Gate) AllowRelease() {
	g.mu.Lock()
	g.releasable = true
	g.mu.Unlock()
}

// Close stops the gate's own work. The pinned link stays, its deadline
// running out, unless the gate was opened with ReleaseOnExit and its
// release allowed (AllowRelease).
func (g *Gate) Close() error {
	close(g.stop)
	<-g.done
	g.mu.Lock()
	release := g.releasable
	g.mu.Unlock()
	var err error
	if g.opts.ReleaseOnExit && !release {
		g.opts.Logger.Warn(event.EgressKept, "dest", g.dests, "pin", g.pinPath)
	}
	if g.opts.ReleaseOnExit && release {
		if uerr := g.link.Unpin(); uerr != nil {
			err = fmt.Errorf("egress gate: unpinning %s: %w", g.pinPath, uerr)
		}
		for _, sl := range g.sock {
			if uerr := sl.link.Unpin(); uerr != nil {
				err = errors.Join(err, fmt.Errorf("egress gate: unpinning %s: %w", sl.pin, uerr))
			}
		}
		_ = os.Remove(filepath.Dir(g.pinPath))
		g.opts.Logger.Info(event.EgressReleased, "dest", g.dests, "pin", g.pinPath)
	}
	g.link.Close()
	g.closeSockLinks()
	g.objs.Close()
	return err
}

func (g *Gate) rescan() {
	defer close(g.done)
	t := time.NewTicker(g.opts.Rescan)
	defer t.Stop()
	failing := false
	for {
		select {
		case <-g.stop:
			return
		case <-t.C:
		}
		err := g.owner.scan()
		if err != nil {
			g.scanFailures.Add(1)
		}
		if err != nil && !failing {
			g.opts.Logger.Warn(event.EgressScanFailed, "dest", g.dests, "err", err)
		}
		failing = err != nil
	}
}

// Release removes the gate pinned for node under pinDir ("" is
// DefaultPinDir): the service's packets pass again, whoever sends them.
func Release(pinDir, node string) error {
	if pinDir == "" {
		pinDir = DefaultPinDir
	}
	dir := filepath.Join(pinDir, url.PathEscape(node))
	p := filepath.Join(dir, "link")
	l, err := link.LoadPinnedLink(p, nil)
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("%w for node %q (%s)", ErrNotPinned, node, p)
	}
	if err != nil {
		return fmt.Errorf("opening the pinned gate %s: %w", p, err)
	}
	defer l.Close()
	if err := l.Unpin(); err != nil {
		return fmt.Errorf("unpinning %s: %w", p, err)
	}
	// The socket hooks of a --pid/--tree gate, useless without it.
	if err := retireSockHooks(dir); err != nil {
		return err
	}
	if err := os.Remove(dir); err != nil {
		return fmt.Errorf("removing %s: %w", dir, err)
	}
	return nil
}
