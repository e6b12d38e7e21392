package fusehang

import (
	"context"
	"fmt"
	"syscall"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// HoldWrites makes a loopback mount (Options.Loopback) hold every write
// and fsync from now on, unanswered, until Release: the writer sleeps in
// the kernel as on a storage path that stopped answering.
func (f *FS) HoldWrites() { f.holdWrites.Store(true) }

// HoldFsyncs makes a loopback mount hold every fsync from now on,
// unanswered, until Release, while writes go on: a flush to stable
// storage that never completes.
func (f *FS) HoldFsyncs() { f.holdFsyncs.Store(true) }

// DelayFsyncs makes a loopback mount answer every fsync that arrives from
// now on d after it arrived (0: at once), as a healthy but busy disk
// does; Release answers the waiting ones at once. The caller sleeps in S
// (request_wait_answer) meanwhile, where a disk's would sleep in D: both
// are judged by fsync's rule.
func (f *FS) DelayFsyncs(d time.Duration) { f.fsyncDelay.Store(int64(d)) }

// HoldFlushes makes a loopback mount hold every FLUSH from now on,
// unanswered, until Release: close(2) sends one for each file descriptor
// it closes and waits for the answer, as NFS flushes dirty data on close.
func (f *FS) HoldFlushes() { f.holdFlushes.Store(true) }

// loopbackRoot is the root of a loopback of Options.Loopback whose nodes
// hand out holding file handles.
func (f *FS) loopbackRoot() (gofs.InodeEmbedder, error) {
	var st syscall.Stat_t
	if err := syscall.Stat(f.opts.Loopback, &st); err != nil {
		return nil, fmt.Errorf("loopback of %s: %w", f.opts.Loopback, err)
	}
	lr := &gofs.LoopbackRoot{Path: f.opts.Loopback, Dev: uint64(st.Dev)}
	lr.NewNode = func(r *gofs.LoopbackRoot, _ *gofs.Inode, _ string, _ *syscall.Stat_t) gofs.InodeEmbedder {
		return &holdNode{LoopbackNode: gofs.LoopbackNode{RootData: r}, fs: f}
	}
	root := &holdNode{LoopbackNode: gofs.LoopbackNode{RootData: lr}, fs: f}
	lr.RootNode = root
	return root, nil
}

// holdNode is a loopback node whose open files hold writes and fsyncs.
type holdNode struct {
	gofs.LoopbackNode
	fs *FS
}

var (
	_ gofs.NodeOpener  = (*holdNode)(nil)
	_ gofs.NodeCreater = (*holdNode)(nil)
)

func (n *holdNode) Open(ctx context.Context, flags uint32) (gofs.FileHandle, uint32, syscall.Errno) {
	fh, fl, errno := n.LoopbackNode.Open(ctx, flags)
	return n.wrap(fh), fl, errno
}

func (n *holdNode) Create(ctx context.Context, name string, flags uint32, mode uint32, out *fuse.EntryOut) (*gofs.Inode, gofs.FileHandle, uint32, syscall.Errno) {
	in, fh, fl, errno := n.LoopbackNode.Create(ctx, name, flags, mode, out)
	return in, n.wrap(fh), fl, errno
}

func (n *holdNode) wrap(fh gofs.FileHandle) gofs.FileHandle {
	if lf, ok := fh.(*gofs.LoopbackFile); ok {
		return &holdingFile{LoopbackFile: lf, fs: n.fs}
	}
	return fh
}

// holdingFile is a loopback file; every other operation passes through.
type holdingFile struct {
	*gofs.LoopbackFile
	fs *FS
}

func (h *holdingFile) Write(ctx context.Context, data []byte, off int64) (uint32, syscall.Errno) {
	if errno := h.fs.holdWrite(ctx); errno != 0 {
		return 0, errno
	}
	return h.LoopbackFile.Write(ctx, data, off)
}

func (h *holdingFile) Fsync(ctx context.Context, flags uint32) syscall.Errno {
	f := h.fs
	delayed := false
	f.update(func(s *Stats) { s.PendingFsyncs++ })
	defer func() {
		f.update(func(s *Stats) {
			s.PendingFsyncs--
			s.Fsyncs++
			if delayed {
				s.DelayedFsyncs++
			}
		})
	}()
	if errno := f.holdWrite(ctx); errno != 0 {
		return errno
	}
	if f.holdFsyncs.Load() {
		if errno := f.hold(ctx); errno != 0 {
			return errno
		}
	} else if d := time.Duration(f.fsyncDelay.Load()); d > 0 {
		start := time.Now()
		timer := time.NewTimer(d)
		defer timer.Stop()
		if errno := f.holdFor(ctx, timer.C); errno != 0 {
			return errno
		}
		delayed = time.Since(start) >= d
	}
	return h.LoopbackFile.Fsync(ctx, flags)
}

func (h *holdingFile) Flush(ctx context.Context) syscall.Errno {
	f := h.fs
	if f.holdFlushes.Load() {
		f.update(func(s *Stats) { s.PendingFlushes++ })
		defer f.update(func(s *Stats) { s.PendingFlushes-- })
		if errno := f.hold(ctx); errno != 0 {
			return errno
		}
	}
	return h.LoopbackFile.Flush(ctx)
}

func (f *FS) holdWrite(ctx context.Context) syscall.Errno {
	if !f.holdWrites.Load() {
		return 0
	}
	f.update(func(s *Stats) { s.PendingWrites++ })
	defer f.update(func(s *Stats) { s.PendingWrites-- })
	return f.hold(ctx)
}
