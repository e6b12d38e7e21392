package workload_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stallmon/stallmon/internal/testutil/fusehang"
)

func TestReadFile(t *testing.T) {
	fusehang.Require(t)
	p := start(t)
	// Mounted after start: its cleanup answers the read before the
	// workload is stopped.
	f := fusehang.Mount(t, fusehang.Options{})

	r := do(t, p, "read-file "+f.File)
	assertStuck(t, p, r, "request_wait_answer")
	tid := mustInt(t, r, "tid")
	if link, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%d", p.PID, mustInt(t, r, "fd"))); err != nil || link != f.File {
		t.Errorf("fd of the reply is %q (%v), want %s", link, err, f.File)
	}
	if _, err := p.Do("read-file " + f.File); !isReplyError(err) {
		t.Errorf("second read-file while the first hangs: err=%v, want an err reply", err)
	}

	f.Release()
	waitThreadGone(t, p.PID, tid)
	if st := f.Stats(); st.Reads != 1 || st.Pending != 0 || st.Interrupts != 0 {
		t.Errorf("FUSE server stats %+v, want one read, answered, never interrupted", st)
	}
}

func TestReadFileErrors(t *testing.T) {
	p := start(t)
	plain := filepath.Join(t.TempDir(), "plain")
	if err := os.WriteFile(plain, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, cmd := range []string{"read-file", "read-file a b", "read-file /nonexistent/file", "read-file " + plain} {
		if _, err := p.Do(cmd); !isReplyError(err) {
			t.Errorf("%q: err=%v, want an err reply", cmd, err)
		}
	}
}

func waitThreadGone(t *testing.T, pid, tid int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err := os.Stat(fmt.Sprintf("/proc/%d/task/%d", pid, tid))
		if errors.Is(err, os.ErrNotExist) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("thread %d still there 5s after its read was answered (stat err %v)", tid, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
