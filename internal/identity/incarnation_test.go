package identity

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// Incarnations grow across runs even when the clock steps back, follow
// the clock when it is ahead, and are kept per node id.
func TestNextIncarnationSurvivesClockStepBack(t *testing.T) {
	dir := t.TempDir()
	now := time.Unix(2_000_000_000, 0)
	first, err := NextIncarnation(dir, "db/1", now)
	if err != nil || first != uint64(now.UnixNano()) {
		t.Fatalf("first = %d, %v; want the clock, %d", first, err, now.UnixNano())
	}
	back, err := NextIncarnation(dir, "db/1", now.Add(-time.Hour))
	if err != nil || back <= first {
		t.Fatalf("after the clock stepped back: %d, %v; want over %d", back, err, first)
	}
	ahead, err := NextIncarnation(dir, "db/1", now.Add(time.Hour))
	if err != nil || ahead != uint64(now.Add(time.Hour).UnixNano()) {
		t.Fatalf("clock ahead: %d, %v; want the clock", ahead, err)
	}
	other, err := NextIncarnation(dir, "db/2", now.Add(-time.Hour))
	if err != nil || other != uint64(now.Add(-time.Hour).UnixNano()) {
		t.Fatalf("another node: %d, %v; want its own sequence, starting at the clock", other, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "incarnation-db%2F1")); err != nil {
		t.Errorf("state file: %v", err)
	}
}

// Agents starting together on one host never get the same incarnation.
func TestNextIncarnationConcurrent(t *testing.T) {
	dir := t.TempDir()
	now := time.Unix(2_000_000_000, 0)
	const n = 20
	got := make(chan uint64, n)
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			inc, err := NextIncarnation(dir, "node", now)
			if err != nil {
				t.Error(err)
			}
			got <- inc
		}()
	}
	wg.Wait()
	close(got)
	seen := map[uint64]bool{}
	for inc := range got {
		if seen[inc] {
			t.Fatalf("incarnation %d handed out twice", inc)
		}
		seen[inc] = true
	}
}

// A torn state file is overwritten from the clock, once, not left to
// fail every restart after.
func TestNextIncarnationCorruptState(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "incarnation-n")
	if err := os.WriteFile(path, []byte("garb"), 0o600); err != nil {
		t.Fatal(err)
	}
	now := time.Unix(2_000_000_000, 0)
	inc, err := NextIncarnation(dir, "n", now)
	if err != nil || inc != uint64(now.UnixNano()) {
		t.Fatalf("over a torn file: %d, %v; want the clock", inc, err)
	}
	if next, err := NextIncarnation(dir, "n", now.Add(-time.Hour)); err != nil || next != inc+1 {
		t.Fatalf("after: %d, %v; want %d", next, err, inc+1)
	}
}

// A state directory others may write to is refused: root would follow
// the links they plant there.
func TestStateDirMustBePrivate(t *testing.T) {
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	if _, err := NextIncarnation(dir, "n", time.Now()); err == nil || !strings.Contains(err.Error(), "writable by group or others") {
		t.Errorf("NextIncarnation in a 0777 dir: %v", err)
	}
	if _, err := LockNode(dir, "n"); err == nil || !strings.Contains(err.Error(), "writable by group or others") {
		t.Errorf("LockNode in a 0777 dir: %v", err)
	}
}

// A second agent cannot take a node id another one holds, until it lets go.
func TestLockNode(t *testing.T) {
	dir := t.TempDir()
	a, err := LockNode(dir, "host/nginx")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := LockNode(dir, "host/nginx"); !errors.Is(err, ErrNodeInUse) {
		t.Fatalf("second lock: %v, want ErrNodeInUse", err)
	}
	b, err := LockNode(dir, "host/redis")
	if err != nil {
		t.Fatalf("another node id: %v", err)
	}
	defer b.Unlock()
	if err := a.Unlock(); err != nil {
		t.Fatal(err)
	}
	c, err := LockNode(dir, "host/nginx")
	if err != nil {
		t.Fatalf("after unlock: %v", err)
	}
	c.Unlock()
}
