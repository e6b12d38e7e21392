package guest

import (
	"bytes"
	"log/slog"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/stallmon/stallmon/internal/event"
	"github.com/stallmon/stallmon/internal/tracker"
	"github.com/stallmon/stallmon/internal/waitsite"
)

// lockedBuffer is a log destination the tracker may write from any
// goroutine.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// With kernel.kptr_restrict=2 even root reads every address in
// /proc/kallsyms as zero. The tracker says so once, at attach, and every
// wait is unknown, which no rule reads as waiting by design. It changes a
// sysctl of the whole machine, so it runs only in the VMs.
func TestWaitSitesWithHiddenSymbols(t *testing.T) {
	requireVM(t)
	const sysctl = "/proc/sys/kernel/kptr_restrict"
	old, err := os.ReadFile(sysctl)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(sysctl, []byte("2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := os.WriteFile(sysctl, old, 0o644); err != nil {
			t.Errorf("restoring %s: %v", sysctl, err)
		}
	})
	var logged lockedBuffer
	m, err := tracker.Attach(tracker.Process(os.Getpid()), slog.New(slog.NewJSONHandler(&logged, nil)), tracker.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	if !strings.Contains(logged.String(), `"msg":"`+event.KernelSymbolsUnreadable+`"`) {
		t.Errorf("no %s event at attach; the log: %s", event.KernelSymbolsUnreadable, logged.String())
	}

	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	defer unix.Close(p[0])
	defer unix.Close(p[1])
	tids := make(chan int, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread()
		tids <- unix.Gettid()
		unix.Read(p[0], make([]byte, 1))
	}()
	tid := <-tids
	defer func() {
		unix.Write(p[1], []byte{1})
		<-done
	}()
	deadline := time.Now().Add(10 * time.Second)
	for {
		s, err := m.Snapshot()
		if err != nil {
			t.Fatal(err)
		}
		if th, ok := s.Thread(tid); ok && th.Wait.Captured() {
			if th.Wait.Class != waitsite.Unknown {
				t.Fatalf("a pipe read with hidden symbols waits in %s, want unknown", th.Wait)
			}
			t.Logf("wait %s; stack %s", th.Wait, th.Wait.Stack())
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("thread %d never seen asleep", tid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
