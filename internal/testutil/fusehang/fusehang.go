// Package fusehang mounts, inside a test process, a FUSE file system with
// one file whose reads the server holds, unanswered, until the test
// releases them: a syscall that hangs for real in the kernel, with no kernel
// module.
//
// The file is opened with FOPEN_DIRECT_IO, so read(2) goes straight to the
// server instead of the page cache: the reader sleeps in S (wchan
// request_wait_answer). A signal to the reader makes the kernel forward a
// FUSE INTERRUPT and wait on. By default the server ignores interrupts, so
// a reader killed with SIGKILL stays in uninterruptible sleep (D) until the
// server answers: the process cannot die, which is what a kernel stuck
// after an oops looks like from user space. Options.HonourInterrupts makes
// the server answer EINTR instead, and SIGKILL ends the reader at once.
//
// Options.PageCache opens the file without FOPEN_DIRECT_IO instead: reads
// (and sendfile, splice, io_uring reads) go through the page cache, the
// kernel sends the READ as readahead in the background and the reader
// waits for the folio lock in killable D (task state 0x102). SIGKILL ends
// such a reader at once; the READ stays held all the same.
//
// HoldGetattr makes the server hold GETATTR requests on the file too: a
// stat(2) that reaches the file system then waits under fuse_do_getattr,
// in S (wchan request_wait_answer) like a direct-IO read, and in D once a
// SIGKILL came and the server ignored the interrupt.
//
// Options.Executable makes the file executable: an execve of it (a
// posix_spawn child's) reads it through the server, and hangs there.
//
// Whoever reads the file must run in another process, or on a thread with
// signals blocked: the Go runtime's preemption signals would otherwise turn
// into interrupts.
package fusehang

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"

	"github.com/stallmon/stallmon/internal/testutil/privtest"
)

// Content is what a released read returns (from its offset on).
const Content = "released by fusehang\n"

// FileName is the name of the file that hangs, in the mount's root.
const FileName = "hang"

// cleanupTimeout bounds the wait for the server to stop after unmount.
const cleanupTimeout = 10 * time.Second

// Options changes how the server treats held reads.
type Options struct {
	// HonourInterrupts makes a held read fail with EINTR as soon as the
	// kernel forwards an interrupt for it, as a well-behaved server does:
	// then a reader killed with SIGKILL dies at once.
	HonourInterrupts bool

	// PageCache opens the file without FOPEN_DIRECT_IO (and without
	// FOPEN_KEEP_CACHE, so every open starts with an empty cache): reads
	// go through the page cache and wait on a locked folio, in killable
	// D, while the server holds the READ.
	PageCache bool

	// Executable gives the file mode 0555 instead of 0444: an exec of it
	// (a posix_spawn child's) reads it through the server and hangs
	// there like any read.
	Executable bool

	// Loopback, a directory, makes the mount a loopback of it instead of
	// the one hanging file: a file system a service can really use
	// (mkdir, create, rename, write, fsync), whose writes and fsyncs the
	// server holds once HoldWrites was called, until Release; or only its
	// fsyncs (HoldFsyncs), or the flushes close(2) sends (HoldFlushes);
	// or whose fsyncs it answers late (DelayFsyncs), as a busy disk does.
	Loopback string
}

// attrTimeout is how long the kernel may trust the file's attributes and
// its directory entry. Short, so that a stat after HoldGetattr reaches the
// server (and blocks) within this long rather than being answered from
// the cache; not zero, so that a burst of stats costs one GETATTR.
const attrTimeout = 100 * time.Millisecond

// Stats counts what the server has seen.
type Stats struct {
	Reads      int // READ requests received on the file
	Pending    int // reads held, not answered yet
	Interrupts int // INTERRUPTs the kernel forwarded for held reads and getattrs

	Getattrs        int // GETATTR requests received on the file, held or not
	PendingGetattrs int // getattrs held since HoldGetattr, not answered yet

	PendingWrites int // loopback writes and fsyncs held since HoldWrites

	Fsyncs         int // loopback FSYNC requests answered
	DelayedFsyncs  int // of those, answered once DelayFsyncs's delay ran out
	PendingFsyncs  int // loopback FSYNCs received and not answered yet: held or delayed
	PendingFlushes int // loopback FLUSHes (sent by close(2)) held since HoldFlushes
}

// FS is a mounted file system; Mount unmounts it when the test ends.
type FS struct {
	Dir  string // mount point
	File string // Dir/FileName, the file whose reads hang

	opts    Options
	server  *fuse.Server
	conn    uint64        // connection number under /sys/fs/fuse/connections
	served  chan struct{} // closed once Serve returned
	release chan struct{}
	relOnce sync.Once
	// holdGetattr is set by HoldGetattr; only Release ends the holding.
	holdGetattr atomic.Bool
	holdWrites  atomic.Bool  // likewise for HoldWrites
	holdFsyncs  atomic.Bool  // and HoldFsyncs
	holdFlushes atomic.Bool  // and HoldFlushes
	fsyncDelay  atomic.Int64 // nanoseconds, set by DelayFsyncs
	file        *hangFile    // set by the root's OnAdd, before Mount returns

	closeOnce sync.Once
	closeErr  error
	serverLog lockedBuffer

	mu      sync.Mutex
	stats   Stats
	changed chan struct{} // closed and replaced on every change of stats
}

// Require skips t unless the process is root and /dev/fuse exists, or fails
// it when privtest.StrictEnv=1 (as privtest.Require does for root).
func Require(t testing.TB) {
	t.Helper()
	privtest.Require(t)
	if _, err := os.Stat(devFuse); err != nil {
		reason := fmt.Sprintf("needs FUSE: %v", err)
		if os.Getenv(privtest.StrictEnv) == "1" {
			t.Fatalf("%s, and %s=1 forbids skipping", reason, privtest.StrictEnv)
			return
		}
		t.Skipf("%s (set %s=1 to fail instead)", reason, privtest.StrictEnv)
	}
}

// devFuse is the FUSE device; a variable so tests can make it missing.
var devFuse = "/dev/fuse"

// Mount mounts a new file system on a temporary directory and serves it
// from this process until the test ends. The cleanup releases held reads
// and unmounts, detaching the mount and aborting the connection if a
// reader still holds the file open; it reports a failure if the server
// would not stop.
//
// Cleanups run last-registered first: call Mount after starting the
// processes that read the file, so that the release comes before anything
// waits for them to exit (a killed reader cannot exit before it).
func Mount(t testing.TB, opts Options) *FS {
	t.Helper()
	Require(t)
	dir := t.TempDir()
	f := &FS{
		Dir:     dir,
		File:    filepath.Join(dir, FileName),
		opts:    opts,
		served:  make(chan struct{}),
		release: make(chan struct{}),
		changed: make(chan struct{}),
	}
	if err := f.mount(); err != nil {
		t.Fatalf("fusehang: %v", err)
	}
	t.Cleanup(func() {
		if err := f.Close(); err != nil {
			t.Errorf("fusehang cleanup: %v", err)
		}
		if t.Failed() && f.serverLog.Len() > 0 {
			t.Logf("FUSE server log:\n%s", f.serverLog.String())
		}
	})
	return f
}

// mount does the mount(2) itself rather than through go-fuse's DirectMount,
// which opens /dev/fuse without O_CLOEXEC (v2.12.1): every process the test
// starts (the workload, stallmon) would inherit the device and keep the
// connection alive. A killed reader would then hold open the very
// connection it waits on, and the end of the test process (which aborts a
// connection whose last device descriptor closes) would no longer free it.
func (f *FS) mount() error {
	dev, err := unix.Open(devFuse, unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("opening %s: %w", devFuse, err)
	}
	data := fmt.Sprintf("fd=%d,rootmode=%o,user_id=%d,group_id=%d", dev, unix.S_IFDIR, os.Geteuid(), os.Getegid())
	if err := unix.Mount("fusehang", f.Dir, "fuse.fusehang", unix.MS_NOSUID|unix.MS_NODEV, data); err != nil {
		unix.Close(dev)
		return fmt.Errorf("mount(%s, fuse.fusehang, %s): %w", f.Dir, data, err)
	}
	// go-fuse logs replies the kernel refused, which is expected once the
	// connection was aborted or the reader is gone: kept, and shown only
	// if the test fails.
	mo := fuse.MountOptions{Name: "fusehang", FsName: "fusehang", Logger: log.New(&f.serverLog, "", log.Ltime|log.Lmicroseconds)}
	timeout := attrTimeout
	var root gofs.InodeEmbedder = &rootNode{fs: f}
	if f.opts.Loopback != "" {
		if root, err = f.loopbackRoot(); err != nil {
			unix.Unmount(f.Dir, unix.MNT_DETACH)
			unix.Close(dev)
			return err
		}
	}
	raw := gofs.NewNodeFS(root, &gofs.Options{
		MountOptions: mo,
		Logger:       mo.Logger,
		EntryTimeout: &timeout,
		AttrTimeout:  &timeout,
	})
	// The /dev/fd/N form hands go-fuse a device that is already mounted;
	// from here on the server owns dev and closes it when Serve returns.
	f.server, err = fuse.NewServer(raw, "/dev/fd/"+strconv.Itoa(dev), &mo)
	if err != nil {
		// dev is left open: NewServer may have closed it already, and
		// closing it twice could close someone else's descriptor. With
		// O_CLOEXEC the leak stays in this process, and detaching the
		// mount ends the connection anyway.
		unix.Unmount(f.Dir, unix.MNT_DETACH)
		return fmt.Errorf("starting the FUSE server: %w", err)
	}
	go func() {
		defer close(f.served)
		f.server.Serve()
	}()
	if err := f.server.WaitMount(); err != nil {
		f.detachAndAbort()
		return fmt.Errorf("waiting for the mount: %w", err)
	}
	if err := f.refusePoll(); err != nil {
		f.detachAndAbort()
		return err
	}
	var st unix.Stat_t
	if err := unix.Stat(f.Dir, &st); err != nil {
		unix.Unmount(f.Dir, unix.MNT_DETACH)
		return fmt.Errorf("stat %s: %w", f.Dir, err)
	}
	// The connection is named by the kernel's dev_t of the superblock
	// (MKDEV: major << 20 | minor), not by userspace's encoding.
	f.conn = uint64(unix.Major(st.Dev))<<20 | uint64(unix.Minor(st.Dev))
	return nil
}

// HoldGetattr makes the server hold every GETATTR request on the file from
// now on, unanswered, until Release, and tells the kernel to drop the
// attributes it cached: from then on a stat that follows a link into the
// file (such as stat -L /proc/PID/fd/N of a reader) blocks in
// fuse_do_getattr (wchan request_wait_answer). A stat by path name may not: the LOOKUP that
// revalidates the name is answered and refreshes the attributes on the
// way.
func (f *FS) HoldGetattr() {
	f.holdGetattr.Store(true)
	// A negative offset invalidates the attributes only, not the page
	// cache (a held page-cache read keeps its locked folio). Should the
	// notification fail, the attributes expire within attrTimeout anyway.
	// ENOENT: the kernel has no inode for the file, so nothing cached.
	if errno := f.file.NotifyContent(-1, 0); errno != 0 && errno != syscall.ENOENT {
		fmt.Fprintf(&f.serverLog, "fusehang: invalidating the file's attributes: %v\n", errno)
	}
}

// Release answers every held read and getattr, and every later one: reads
// with Content.
func (f *FS) Release() {
	f.relOnce.Do(func() { close(f.release) })
}

// Stats returns what the server has seen so far.
func (f *FS) Stats() Stats {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.stats
}

// WaitFor returns once ok holds for the server's stats, or an error naming
// what after timeout.
func (f *FS) WaitFor(what string, timeout time.Duration, ok func(Stats) bool) (Stats, error) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		f.mu.Lock()
		st, changed := f.stats, f.changed
		f.mu.Unlock()
		if ok(st) {
			return st, nil
		}
		select {
		case <-changed:
		case <-deadline.C:
			return st, fmt.Errorf("fusehang: no %s within %v (stats %+v)", what, timeout, st)
		}
	}
}

func (f *FS) update(change func(*Stats)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	change(&f.stats)
	close(f.changed)
	f.changed = make(chan struct{})
}

// Conn is the connection's number under /sys/fs/fuse/connections.
func (f *FS) Conn() uint64 { return f.conn }

// Abort aborts the connection through fusectl, as
// `echo 1 > /sys/fs/fuse/connections/N/abort` does: every request in flight
// fails, held reads included, and the server stops. When fusectl is not
// mounted at /sys/fs/fuse/connections, a private mount of it is used.
func (f *FS) Abort() error {
	dir := "/sys/fs/fuse/connections"
	if _, err := os.Stat(filepath.Join(dir, strconv.FormatUint(f.conn, 10))); err != nil {
		tmp, err := os.MkdirTemp("", "fusectl")
		if err != nil {
			return fmt.Errorf("aborting connection %d: %w", f.conn, err)
		}
		defer os.Remove(tmp)
		if err := unix.Mount("fusectl", tmp, "fusectl", 0, ""); err != nil {
			return fmt.Errorf("aborting connection %d: mounting fusectl: %w", f.conn, err)
		}
		defer unix.Unmount(tmp, unix.MNT_DETACH)
		dir = tmp
	}
	err := os.WriteFile(filepath.Join(dir, strconv.FormatUint(f.conn, 10), "abort"), []byte("1"), 0)
	if errors.Is(err, fs.ErrNotExist) {
		// The connection is gone already: nothing left to abort.
		return nil
	}
	if err != nil {
		return fmt.Errorf("aborting connection %d: %w", f.conn, err)
	}
	return nil
}

// Close releases held reads, unmounts and waits for the server to stop.
// If the file is still open (a reader alive, or a killed one not yet
// gone), the mount is detached and the connection aborted. Mount's cleanup
// calls it; calling it again does nothing.
func (f *FS) Close() error {
	f.closeOnce.Do(func() { f.closeErr = f.close() })
	return f.closeErr
}

func (f *FS) close() error {
	f.Release()
	// Let the answers go out before a busy unmount aborts the
	// connection; an answer that loses the race is only logged.
	f.WaitFor("answers to held requests", time.Second, func(s Stats) bool {
		return s.Pending == 0 && s.PendingGetattrs == 0 && s.PendingWrites == 0 && s.PendingFsyncs == 0 && s.PendingFlushes == 0
	})
	var errs []error
	if err := unix.Unmount(f.Dir, 0); err != nil {
		errs = append(errs, f.detachAndAbort()...)
	}
	select {
	case <-f.served:
	case <-time.After(time.Second):
		// A mount namespace made while we were mounted (another test
		// package starting a daemon in one, `ip netns exec`) holds a
		// copy of the mount: the unmount here leaves the connection up
		// and the server serving. Aborting it ends both.
		if f.conn != 0 {
			if err := f.Abort(); err != nil {
				errs = append(errs, err)
			}
		}
	}
	select {
	case <-f.served:
	case <-time.After(cleanupTimeout):
		errs = append(errs, fmt.Errorf("FUSE server on %s still running %v after unmount", f.Dir, cleanupTimeout))
	}
	return errors.Join(errs...)
}

func (f *FS) detachAndAbort() []error {
	var errs []error
	if err := unix.Unmount(f.Dir, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) {
		errs = append(errs, fmt.Errorf("detaching %s: %w", f.Dir, err))
	}
	if f.conn != 0 {
		if err := f.Abort(); err != nil {
			errs = append(errs, err)
		}
	}
	return errs
}

// lockedBuffer is a bytes.Buffer the server's goroutines may share.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) Len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Len()
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

type rootNode struct {
	gofs.Inode
	fs *FS
}

var (
	_ gofs.NodeOnAdder  = (*rootNode)(nil)
	_ gofs.NodeLookuper = (*rootNode)(nil)
)

func (r *rootNode) OnAdd(ctx context.Context) {
	r.fs.file = &hangFile{fs: r.fs}
	child := r.NewPersistentInode(ctx, r.fs.file, gofs.StableAttr{Mode: syscall.S_IFREG, Ino: 2})
	r.AddChild(FileName, child, false)
}

// Lookup answers from the tree, filling in the attributes itself: without
// it, go-fuse calls the file's Getattr for every LOOKUP, which would then
// be held (and counted) as if it were a GETATTR.
func (r *rootNode) Lookup(_ context.Context, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	child := r.GetChild(name)
	if child == nil {
		return nil, syscall.ENOENT
	}
	r.fs.fillAttr(&out.Attr)
	return child, 0
}

func (f *FS) fillAttr(a *fuse.Attr) {
	a.Mode = syscall.S_IFREG | 0o444
	if f.opts.Executable {
		a.Mode |= 0o111
	}
	a.Size = uint64(len(Content))
}

type hangFile struct {
	gofs.Inode
	fs *FS
}

var (
	_ gofs.NodeGetattrer = (*hangFile)(nil)
	_ gofs.NodeOpener    = (*hangFile)(nil)
	_ gofs.NodeReader    = (*hangFile)(nil)
)

// Getattr is reached by GETATTR requests only (see rootNode.Lookup); after
// HoldGetattr it holds them until Release.
func (h *hangFile) Getattr(ctx context.Context, _ gofs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	f := h.fs
	f.update(func(s *Stats) { s.Getattrs++ })
	if f.holdGetattr.Load() {
		f.update(func(s *Stats) { s.PendingGetattrs++ })
		defer f.update(func(s *Stats) { s.PendingGetattrs-- })
		if errno := f.hold(ctx); errno != 0 {
			return errno
		}
	}
	f.fillAttr(&out.Attr)
	return 0
}

// Open asks for direct I/O unless Options.PageCache: reads bypass the page
// cache and reach Read, which is where they are held. With the page cache,
// reads reach Read as readahead, held just the same.
func (h *hangFile) Open(context.Context, uint32) (gofs.FileHandle, uint32, syscall.Errno) {
	if h.fs.opts.PageCache {
		return nil, 0, 0
	}
	return nil, fuse.FOPEN_DIRECT_IO, 0
}

func (h *hangFile) Read(ctx context.Context, _ gofs.FileHandle, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	f := h.fs
	f.update(func(s *Stats) { s.Reads++; s.Pending++ })
	defer f.update(func(s *Stats) { s.Pending-- })
	if errno := f.hold(ctx); errno != 0 {
		return nil, errno
	}
	off = min(max(off, 0), int64(len(Content)))
	n := min(len(dest), len(Content)-int(off))
	return fuse.ReadResultData([]byte(Content[off : off+int64(n)])), 0
}

// hold returns once Release was called, or with EINTR when the kernel
// forwards an interrupt for the request and the server honours those.
func (f *FS) hold(ctx context.Context) syscall.Errno { return f.holdFor(ctx, nil) }

// holdFor is hold that also returns once elapsed delivers (a nil channel
// never does).
func (f *FS) holdFor(ctx context.Context, elapsed <-chan time.Time) syscall.Errno {
	interrupt := ctx.Done()
	for {
		select {
		case <-f.release:
			return 0
		case <-elapsed:
			return 0
		case <-interrupt:
			f.update(func(s *Stats) { s.Interrupts++ })
			if f.opts.HonourInterrupts {
				return syscall.EINTR
			}
			// Ignored: the kernel goes on waiting for our answer.
			interrupt = nil
		}
	}
}

// refusePoll makes the kernel stop sending this server POLL requests,
// which it cannot always answer. Opening a regular file of the mount from
// this process (a test writing through it) registers the fd with Go's
// netpoller, whose epoll_ctl asks this very server for POLL while the
// calling goroutine still holds its scheduler slot: a garbage collection
// starting then waits for that goroutine, the server's goroutines never
// run, and the whole test process hangs (seen once in 60 loaded runs of
// a keepalived test). go-fuse's cure, answering one POLL on its magic
// file with ENOSYS so that the kernel asks no more, is skipped for a
// /dev/fd/N mount, which this is: so it is done here.
func (f *FS) refusePoll() error {
	fd, err := unix.Open(filepath.Join(f.Dir, ".go-fuse-epoll-hack"), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("opening go-fuse's poll file: %w", err)
	}
	defer unix.Close(fd)
	// The answer is ENOSYS, whatever poll returns: the kernel remembers it.
	unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN | unix.POLLPRI | unix.POLLOUT}}, 0)
	return nil
}
