package keepalived

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/stallmon/stallmon/internal/sink"
	"github.com/stallmon/stallmon/internal/testutil/fusehang"
	"github.com/stallmon/stallmon/internal/testutil/privtest"
)

// Root writes anywhere the permissions say no; a read-only mount stops
// even root, and New says so at once, in one line.
func TestNewRejectsReadOnlyDirectory(t *testing.T) {
	privtest.Require(t)
	dir := t.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", unix.MS_RDONLY, "size=64k"); err != nil {
		t.Fatalf("mounting a read-only tmpfs: %v", err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(dir, 0); err != nil {
			t.Errorf("unmounting %s: %v", dir, err)
		}
	})
	_, err := New(filepath.Join(dir, "verdict"), nil)
	if err == nil || !strings.Contains(err.Error(), "is not writable") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("New on a read-only mount: %v, want a one-line error saying it is not writable", err)
	}
}

// A write stuck in the kernel (the file's file system stopped answering)
// costs Apply its deadline, not the hub's goroutine; the file is right
// again once the file system answers.
func TestApplyHonoursDeadlineOnHungWrite(t *testing.T) {
	fusehang.Require(t)
	backing := t.TempDir()
	fs := fusehang.Mount(t, fusehang.Options{Loopback: backing})
	s, err := New(filepath.Join(fs.Dir, "verdict"), nil)
	if err != nil {
		t.Fatal(err)
	}
	// Registered after Mount: runs before its cleanup, which answers
	// the held writes; Close is bounded all the same.
	t.Cleanup(func() { s.Close() })
	fs.HoldWrites()
	for i := range 2 {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		start := time.Now()
		err := s.Apply(ctx, sink.Verdict{State: sink.Stalled})
		cancel()
		if took := time.Since(start); err == nil || took > time.Second {
			t.Fatalf("Apply %d on a hung file system: err %v after %v, want an error at the 200ms deadline", i, err, took)
		}
	}
	if _, err := fs.WaitFor("a held write", 5*time.Second, func(st fusehang.Stats) bool { return st.PendingWrites > 0 }); err != nil {
		t.Fatal(err)
	}
	fs.Release()
	deadline := time.Now().Add(5 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := s.Apply(ctx, sink.Verdict{State: sink.Stalled})
		cancel()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Apply still failing 5s after the file system answered: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	b, err := os.ReadFile(filepath.Join(backing, "verdict"))
	if err != nil || string(b) != "1\n" {
		t.Fatalf("file says %q (%v), want \"1\\n\"", b, err)
	}
}
