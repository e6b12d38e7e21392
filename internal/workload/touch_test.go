package workload_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stallmon/stallmon/internal/testutil/fusehang"
	"github.com/stallmon/stallmon/internal/testutil/privtest"
	"github.com/stallmon/stallmon/internal/workload"
)

// assertFaulting checks the thread sleeps interruptibly outside any
// syscall, in kernel function wchan.
func assertFaulting(t *testing.T, p *workload.Proc, tid int, wchan string) {
	t.Helper()
	th := inspect(t, p.PID, tid)
	if f := strings.Fields(th.syscall); len(f) == 0 || f[0] != "-1" {
		t.Errorf("thread %d: syscall file %q, want -1 (outside any syscall)", tid, th.syscall)
	}
	if th.state != "S" || th.wchan != wchan {
		t.Errorf("thread %d: state %q in %q, want S in %s", tid, th.state, th.wchan, wchan)
	}
}

func TestTouchUffd(t *testing.T) {
	privtest.Require(t)
	privtest.RequireUserfaultfd(t)
	p := start(t)
	tid := mustInt(t, do(t, p, "touch-uffd"), "tid")
	if tid == p.PID {
		t.Errorf("toucher runs on the main thread %d", tid)
	}
	assertFaulting(t, p, tid, "handle_userfault")
	if _, err := p.Do("touch-uffd"); !isReplyError(err) {
		t.Errorf("second touch-uffd: err=%v, want an err reply", err)
	}
	rel := do(t, p, "touch-uffd-release")
	if got := mustInt(t, rel, "tid"); got != tid {
		t.Errorf("touch-uffd-release names thread %d, want %d", got, tid)
	}
	// UFFDIO_COPY filled the page with zeroes.
	if v := mustInt(t, rel, "value"); v != 0 {
		t.Errorf("the toucher loaded %d, want 0", v)
	}
	waitThreadGone(t, p.PID, tid)
	if _, err := p.Do("touch-uffd-release"); !isReplyError(err) {
		t.Errorf("touch-uffd-release with nothing faulting: err=%v, want an err reply", err)
	}
}

// One thread faulting on page after page, each resolved in turn: between
// two faults it went on, and each fault is a sleep of its own.
func TestTouchUffdPages(t *testing.T) {
	privtest.Require(t)
	privtest.RequireUserfaultfd(t)
	p := start(t)
	for _, cmd := range []string{"touch-uffd 0", "touch-uffd x", "touch-uffd 1 2", "touch-uffd-next"} {
		if _, err := p.Do(cmd); !isReplyError(err) {
			t.Errorf("%q: err=%v, want an err reply", cmd, err)
		}
	}
	tid := mustInt(t, do(t, p, "touch-uffd 3"), "tid")
	for page := range 3 {
		assertFaulting(t, p, tid, "handle_userfault")
		r := do(t, p, "touch-uffd-next")
		if mustInt(t, r, "tid") != tid || mustInt(t, r, "page") != page || mustInt(t, r, "left") != 2-page {
			t.Fatalf("touch-uffd-next %d: %v, want tid %d, page %d, %d left", page, r.Fields, tid, page, 2-page)
		}
	}
	waitThreadGone(t, p.PID, tid)
}

// A thread stuck in a userfault must not keep the process from exiting.
func TestExitWhileTouchUffd(t *testing.T) {
	privtest.Require(t)
	privtest.RequireUserfaultfd(t)
	p := start(t)
	assertFaulting(t, p, mustInt(t, do(t, p, "touch-uffd"), "tid"), "handle_userfault")
}

func TestTouchFile(t *testing.T) {
	fusehang.Require(t)
	p := start(t)
	// Mounted after start: its cleanup answers the read before the
	// workload is stopped.
	f := fusehang.Mount(t, fusehang.Options{})
	tid := mustInt(t, do(t, p, "touch-file "+f.File), "tid")
	assertFaulting(t, p, tid, "request_wait_answer")
	if _, err := p.Do("touch-file " + f.File); !isReplyError(err) {
		t.Errorf("second touch-file while the first faults: err=%v, want an err reply", err)
	}
	f.Release()
	waitThreadGone(t, p.PID, tid)
	if st := f.Stats(); st.Reads != 1 || st.Pending != 0 || st.Interrupts != 0 {
		t.Errorf("FUSE server stats %+v, want one read, answered, never interrupted", st)
	}
}

func TestTouchFileErrors(t *testing.T) {
	p := start(t)
	plain := filepath.Join(t.TempDir(), "plain")
	if err := os.WriteFile(plain, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, cmd := range []string{"touch-file", "touch-file a b", "touch-file /nonexistent/file", "touch-file " + plain} {
		if _, err := p.Do(cmd); !isReplyError(err) {
			t.Errorf("%q: err=%v, want an err reply", cmd, err)
		}
	}
}
