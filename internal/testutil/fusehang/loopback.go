package fusehang

import (
	"context"
	"fmt"
	"syscall"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// HoldWrites makes a loopback mount (Options.Loopback) hold every write
// and fsync from now on, unanswered, until Release: the writer sleeps in
// the kernel as on a storage path that stopped answering.
func (f *FS) HoldWrites() { f.holdWrites.Store(true) }

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
	if errno := h.fs.holdWrite(ctx); errno != 0 {
		return errno
	}
	return h.LoopbackFile.Fsync(ctx, flags)
}

func (f *FS) holdWrite(ctx context.Context) syscall.Errno {
	if !f.holdWrites.Load() {
		return 0
	}
	f.update(func(s *Stats) { s.PendingWrites++ })
	defer f.update(func(s *Stats) { s.PendingWrites-- })
	return f.hold(ctx)
}
