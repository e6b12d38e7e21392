package keepalived

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stallmon/stallmon/internal/event"
	"github.com/stallmon/stallmon/internal/sink"
)

// events records the sink's log records by msg.
type events struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (e *events) Write(p []byte) (int, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.b.Write(p)
}

func (e *events) count(msg string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := 0
	for line := range strings.Lines(e.b.String()) {
		var rec map[string]any
		if json.Unmarshal([]byte(line), &rec) == nil && rec["msg"] == msg {
			n++
		}
	}
	return n
}

func newSink(t *testing.T) (*Sink, *events) {
	t.Helper()
	ev := &events{}
	s, err := New(filepath.Join(t.TempDir(), "verdict"), slog.New(slog.NewJSONHandler(ev, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, ev
}

func apply(t *testing.T, s *Sink, v sink.Verdict) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := s.Apply(ctx, v); err != nil {
		t.Fatalf("Apply(%v): %v", v.State, err)
	}
}

func readValue(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func inode(t *testing.T, path string) uint64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t).Ino
}

func TestValues(t *testing.T) {
	want := map[sink.State]int{sink.Alive: 0, sink.Stalled: 1, sink.Blind: 2, sink.Fenced: 3, sink.Leaving: 4, sink.State(99): 2}
	for st, v := range want {
		if got := Value(st); got != v {
			t.Errorf("Value(%v) = %d, want %d", st, got, v)
		}
	}
}

// Fail closed from the start: the file says starting before any verdict,
// and each verdict's value after it.
func TestWritesEachState(t *testing.T) {
	s, _ := newSink(t)
	if got := readValue(t, s.Path()); got != "5\n" {
		t.Fatalf("after New the file says %q, want \"5\\n\" (starting)", got)
	}
	fi, err := os.Stat(s.Path())
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o644 {
		t.Errorf("file mode %v, want 0644", fi.Mode().Perm())
	}
	for _, c := range []struct {
		state sink.State
		want  string
	}{{sink.Alive, "0\n"}, {sink.Stalled, "1\n"}, {sink.Alive, "0\n"}, {sink.Blind, "2\n"}, {sink.Fenced, "3\n"}, {sink.Leaving, "4\n"}} {
		apply(t, s, sink.Verdict{State: c.state, At: time.Now()})
		if got := readValue(t, s.Path()); got != c.want {
			t.Errorf("after %v the file says %q, want %q", c.state, got, c.want)
		}
	}
	entries, err := os.ReadDir(filepath.Dir(s.Path()))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Errorf("directory holds %d entries, want only the file (no temporary left)", len(entries))
	}
}

// The same verdict again writes nothing: the file keeps its inode.
func TestWritesOnlyOnChange(t *testing.T) {
	s, ev := newSink(t)
	apply(t, s, sink.Verdict{State: sink.Stalled})
	ino := inode(t, s.Path())
	written := ev.count(event.KeepalivedFileWritten)
	for range 5 {
		apply(t, s, sink.Verdict{State: sink.Stalled})
	}
	if got := inode(t, s.Path()); got != ino {
		t.Errorf("inode changed from %d to %d: a repeated verdict rewrote the file", ino, got)
	}
	if n := ev.count(event.KeepalivedFileWritten); n != written {
		t.Errorf("%d %s events after repeats, want %d", n, event.KeepalivedFileWritten, written)
	}
}

// A file removed, edited in place or replaced from outside is written
// again at the next verdict, even an unchanged one.
func TestRewritesAfterOutsideChange(t *testing.T) {
	for name, change := range map[string]func(t *testing.T, path string){
		"removed": func(t *testing.T, path string) {
			if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
		},
		"edited in place": func(t *testing.T, path string) {
			if err := os.WriteFile(path, []byte("0\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		},
		"replaced with the same content": func(t *testing.T, path string) {
			tmp := path + ".new"
			if err := os.WriteFile(tmp, []byte("1\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(tmp, path); err != nil {
				t.Fatal(err)
			}
		},
	} {
		t.Run(name, func(t *testing.T) {
			s, ev := newSink(t)
			apply(t, s, sink.Verdict{State: sink.Stalled})
			change(t, s.Path())
			outsider, err := os.Stat(s.Path())
			apply(t, s, sink.Verdict{State: sink.Stalled})
			if got := readValue(t, s.Path()); got != "1\n" {
				t.Errorf("file says %q, want \"1\\n\"", got)
			}
			if err == nil && inode(t, s.Path()) == outsider.Sys().(*syscall.Stat_t).Ino {
				t.Errorf("the outsider's file was kept, not rewritten")
			}
			if n := ev.count(event.KeepalivedFileAltered); n != 1 {
				t.Errorf("%d %s events, want 1", n, event.KeepalivedFileAltered)
			}
		})
	}
}

// Close never removes the file: it turns a 0 into leaving, keeps a
// non-zero value it wrote, and writes leaving over a file changed from
// outside.
func TestCloseFailsClosed(t *testing.T) {
	for _, c := range []struct {
		name    string
		last    sink.State
		outside func(path string) error
		want    string
	}{
		{"after alive", sink.Alive, nil, "4\n"},
		{"after fenced", sink.Fenced, nil, "3\n"},
		{"after stalled, file removed", sink.Stalled, os.Remove, "4\n"},
		{"after stalled, file zeroed", sink.Stalled, func(p string) error { return os.WriteFile(p, []byte("0\n"), 0o644) }, "4\n"},
	} {
		t.Run(c.name, func(t *testing.T) {
			s, _ := newSink(t)
			apply(t, s, sink.Verdict{State: c.last})
			if c.outside != nil {
				if err := c.outside(s.Path()); err != nil {
					t.Fatal(err)
				}
			}
			if err := s.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			if got := readValue(t, s.Path()); got != c.want {
				t.Errorf("after Close the file says %q, want %q", got, c.want)
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			if err := s.Apply(ctx, sink.Verdict{State: sink.Alive}); err == nil {
				t.Error("Apply after Close succeeded")
			}
			if got := readValue(t, s.Path()); got != c.want {
				t.Errorf("Apply after Close changed the file to %q", got)
			}
		})
	}
}

// An Alive verdict past its ValidUntil stays 0 until the next verdict:
// the publisher's next one (Alive renewed, or Blind) decides, and a file
// that expired on its own between two would make keepalived flap.
func TestAliveHoldsUntilNextVerdict(t *testing.T) {
	s, _ := newSink(t)
	until := time.Now().Add(50 * time.Millisecond)
	apply(t, s, sink.Verdict{State: sink.Alive, At: time.Now(), ValidUntil: until})
	for time.Now().Before(until.Add(300 * time.Millisecond)) {
		if got := readValue(t, s.Path()); got != "0\n" {
			t.Fatalf("file says %q before any newer verdict, want \"0\\n\"", got)
		}
		time.Sleep(20 * time.Millisecond)
	}
	apply(t, s, sink.Verdict{State: sink.Blind, At: time.Now()})
	if got := readValue(t, s.Path()); got != "2\n" {
		t.Fatalf("file says %q after blind, want \"2\\n\"", got)
	}
}

func TestNewRejects(t *testing.T) {
	dir := t.TempDir()
	regular := filepath.Join(dir, "regular")
	if err := os.WriteFile(regular, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ path, want string }{
		{"", "no file named"},
		{filepath.Join(dir, "missing", "verdict"), "does not exist"},
		{filepath.Join(regular, "verdict"), "is not a directory"},
		{dir, "is a directory"},
	} {
		_, err := New(c.path, nil)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("New(%q) = %v, want an error saying %q", c.path, err, c.want)
			continue
		}
		if strings.Contains(err.Error(), "\n") {
			t.Errorf("New(%q): error spans lines: %q", c.path, err)
		}
	}
}
