package asynclog

import (
	"bytes"
	"io"
	"strings"
	"sync"
	"testing"
	"time"
)

// gate is a writer that blocks until opened, like a pipe nobody reads.
type gate struct {
	open chan struct{}
	mu   sync.Mutex
	buf  bytes.Buffer
}

func (g *gate) Write(p []byte) (int, error) {
	<-g.open
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.buf.Write(p)
}

func (g *gate) String() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.buf.String()
}

// A writer that blocks never blocks the caller: lines beyond the queue are
// dropped and counted, the rest go out in order once it unblocks, and the
// drop is then reported once, after what was queued.
func TestWriteNeverBlocks(t *testing.T) {
	g := &gate{open: make(chan struct{})}
	w := New(g, 100)
	dropped := make(chan uint64, 1)
	w.OnDrop(func(n uint64) {
		w.Write([]byte("dropped\n"))
		dropped <- n
	})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 50 {
			w.Write([]byte(strings.Repeat(string(rune('a'+i%26)), 9) + "\n"))
		}
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Write blocked on a blocked writer")
	}
	// One line is in the goroutine's hands, blocked in g; ten more fill
	// the 100-byte queue; the rest are dropped.
	if got := w.Dropped(); got < 30 || got > 40 {
		t.Fatalf("dropped %d lines, want 39 or so", got)
	}
	close(g.open)
	n := <-dropped
	if n != w.Dropped() {
		t.Errorf("drop notice says %d, counted %d", n, w.Dropped())
	}
	if !w.Close(5 * time.Second) {
		t.Fatal("Close did not drain")
	}
	out := g.String()
	if !strings.HasPrefix(out, "aaaaaaaaa\nbbbbbbbbb\n") || !strings.HasSuffix(out, "dropped\n") {
		t.Errorf("output out of order:\n%s", out)
	}
}

// Close gives up on a writer that never unblocks.
func TestCloseIsBounded(t *testing.T) {
	g := &gate{open: make(chan struct{})}
	defer close(g.open)
	w := New(g, 1<<10)
	w.Write([]byte("stuck\n"))
	start := time.Now()
	if w.Close(100 * time.Millisecond) {
		t.Fatal("Close reported a drained queue on a blocked writer")
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("Close took %v", d)
	}
	if n, _ := w.Write([]byte("late\n")); n != 5 {
		t.Errorf("Write after Close returned %d", n)
	}
}

func TestCloseDrains(t *testing.T) {
	var buf bytes.Buffer
	var mu sync.Mutex
	w := New(lockedWriter{&mu, &buf}, 1<<20)
	for range 1000 {
		w.Write([]byte("line\n"))
	}
	if !w.Close(10 * time.Second) {
		t.Fatal("Close did not drain")
	}
	mu.Lock()
	defer mu.Unlock()
	if got := strings.Count(buf.String(), "line\n"); got != 1000 {
		t.Fatalf("wrote %d lines, want 1000", got)
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
