package workload

import (
	"runtime"
	"testing"

	"golang.org/x/sys/unix"
)

// A tid held by a thread that started at another time is not the thread
// waitGone waits for: the one it names has exited and its tid went on.
func TestWaitGoneSeesReusedTid(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	tid := unix.Gettid()
	start, err := taskStart(tid)
	if err != nil {
		t.Fatal(err)
	}
	if start == 0 {
		t.Fatalf("thread %d reads start time 0", tid)
	}
	if err := waitGone([]task{{tid: tid, start: start + 1}}); err != nil {
		t.Errorf("a tid now held by another thread: %v", err)
	}
}
