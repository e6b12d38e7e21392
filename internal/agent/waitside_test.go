package agent

import (
	"testing"
	"time"

	"github.com/stallmon/stallmon/internal/fdkind"
	"github.com/stallmon/stallmon/internal/tracker"
	"github.com/stallmon/stallmon/internal/waitsite"
)

// waiting puts th asleep in a wait of class c.
func waiting(th tracker.Thread, c waitsite.Class) tracker.Thread {
	th.Wait = waitsite.Wait{Class: c, Site: "site", Frames: []string{"site"}}
	return th
}

// A two-fd syscall is judged by the side its wait site names: the socket's
// rule for a socket's wait, the pipe's for a pipe's, the file's for a file
// system's; any other class, or none, keeps the stricter of the two.
func TestJudgeTwoFDSideBySite(t *testing.T) {
	S := tracker.StateInterruptible
	sendfile := func(tid int) tracker.Thread {
		return in(tid, "sendfile", time.Hour, S, fdkind.Socket, fdkind.Regular)
	}
	splice := func(tid int) tracker.Thread {
		return in(tid, "splice", time.Hour, S, fdkind.Regular, fdkind.Pipe)
	}
	for _, c := range []struct {
		name  string
		th    tracker.Thread
		over  bool
		fd    fdkind.Kind // the fd blamed, when over
		state bool        // judged on the side's time (fd_wait_seconds)
	}{
		{"sendfile waiting for room on the socket", waiting(sendfile(1), waitsite.SocketSend), false, 0, false},
		{"sendfile waiting for data on the socket", waiting(sendfile(2), waitsite.SocketRecv), false, 0, false},
		{"sendfile waiting on the file", waiting(sendfile(3), waitsite.Storage), true, fdkind.Regular, true},
		{"sendfile waiting on a FUSE server", waiting(sendfile(4), waitsite.FUSE), true, fdkind.Regular, true},
		{"sendfile waiting where no one knows", waiting(sendfile(5), waitsite.Unknown), true, fdkind.Regular, false},
		{"sendfile waiting in an unlisted function", waiting(sendfile(6), waitsite.Other), true, fdkind.Regular, false},
		{"sendfile waiting for a lock", waiting(sendfile(7), waitsite.Lock), true, fdkind.Regular, false},
		{"sendfile running, never seen asleep", sendfile(8), true, fdkind.Regular, false},
		{"splice waiting on the pipe", waiting(splice(9), waitsite.Pipe), false, 0, false},
		// No socket among its fds: the class names no side it has.
		{"splice waiting on a socket it does not have", waiting(splice(10), waitsite.SocketSend), true, fdkind.Regular, false},
		// A one-fd syscall is judged as before: by its fd.
		{"read of a file, whatever it waits on", waiting(in(11, "read", time.Hour, S, fdkind.Regular), waitsite.SocketRecv), true, fdkind.Regular, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			j := testJudge(t)
			t0 := time.Unix(1000, 0)
			// Watched for two seconds past the file's 1s, on the same side.
			var got map[int]judged
			for i := range 31 {
				th := c.th
				th.Elapsed += time.Duration(i) * 100 * time.Millisecond
				got = judgeOnce(j, t0.Add(time.Duration(i)*100*time.Millisecond), th)
			}
			jd, over := got[c.th.TID]
			if over != c.over {
				t.Fatalf("over %v (%+v), want %v", over, jd, c.over)
			}
			if over && (jd.fd.Kind != c.fd || jd.onSide != c.state) {
				t.Errorf("blamed fd %v, on side %v; want %v, %v", jd.fd.Kind, jd.onSide, c.fd, c.state)
			}
			if over && c.state && jd.span != 3*time.Second {
				t.Errorf("judged on %v waiting on the file, want the 3s it was seen there", jd.span)
			}
		})
	}
}

// A sendfile to a slow client, an hour in flight, wakes to read the next
// chunk from disk and sleeps on the socket again: the file's rule counts
// only its time on the file, from the poll that saw it there; a poll that
// finds it on a CPU keeps the side it last slept on. A file that then
// stops answering is caught by the file's budget from the first poll that
// saw the wait.
func TestJudgeTwoFDSideClock(t *testing.T) {
	j := testJudge(t)
	S, R := tracker.StateInterruptible, tracker.StateRunning
	t0 := time.Unix(1000, 0)
	poll := 100 * time.Millisecond
	at := func(i int) time.Time { return t0.Add(time.Duration(i) * poll) }
	th := func(i int, st tracker.TaskState, c waitsite.Class) tracker.Thread {
		x := in(1, "sendfile", time.Hour+time.Duration(i)*poll, st, fdkind.Socket, fdkind.Regular)
		if c != waitsite.None {
			x = waiting(x, c)
		}
		return x
	}
	i := 0
	for _, step := range []struct {
		st tracker.TaskState
		c  waitsite.Class
		n  int
	}{
		{S, waitsite.SocketSend, 5},
		{tracker.StateKillable, waitsite.Storage, 2}, // a disk read of the next chunk
		{R, waitsite.None, 3},                        // copying it
		{S, waitsite.SocketSend, 5},
		{R, waitsite.None, 1},
		{tracker.StateKillable, waitsite.Storage, 5}, // under the file's 1s
		{S, waitsite.SocketSend, 20},
	} {
		for range step.n {
			if got := judgeOnce(j, at(i), th(i, step.st, step.c)); len(got) > 0 {
				t.Fatalf("poll %d (%v in %s): %+v, want no stall", i, step.st, step.c, got[1])
			}
			i++
		}
	}
	// The file stops answering: S in a FUSE wait, for good.
	first := i
	for ; ; i++ {
		got := judgeOnce(j, at(i), th(i, S, waitsite.FUSE))
		jd, over := got[1]
		if !over {
			if i-first > 20 {
				t.Fatalf("a sendfile waiting on a hung file for %v is no stall", time.Duration(i-first)*poll)
			}
			continue
		}
		if held := time.Duration(i-first) * poll; jd.span != held || held <= time.Second || held > time.Second+poll {
			t.Errorf("stall after %v on the file (span %v), want at the first poll past the file's 1s", held, jd.span)
		}
		if jd.fd.Kind != fdkind.Regular || !jd.onSide || jd.reason != reasonOverBudget {
			t.Errorf("stall %+v, want over_budget on the file, on its side", jd)
		}
		break
	}
}

// A kernel-made worker asleep in S doing the process's I/O (a FUSE or NFS
// server's answer, storage, a userfaultfd page) is judged by the
// uninterruptible rule; idle in io_uring's wait for work, or where its
// stack could not be read, it is not, as before.
func TestJudgeKernelWorkerAsleepOnIO(t *testing.T) {
	worker := func(tid int, c waitsite.Class) tracker.Thread {
		th := tracker.Thread{TID: tid, PID: 1, Kernel: true, State: tracker.StateInterruptible, FD: -1, Nr: -1}
		if c != waitsite.None {
			th = waiting(th, c)
		}
		return th
	}
	for _, c := range []struct {
		class waitsite.Class
		over  bool
	}{
		{waitsite.FUSE, true}, {waitsite.NFS, true}, {waitsite.Storage, true}, {waitsite.Userfaultfd, true},
		{waitsite.IOUring, false}, {waitsite.SocketRecv, false}, {waitsite.Pipe, false}, {waitsite.Poll, false},
		{waitsite.Other, false}, {waitsite.Unknown, false}, {waitsite.None, false},
	} {
		t.Run(c.class.String(), func(t *testing.T) {
			j := testJudge(t)
			t0 := time.Unix(1000, 0)
			var got map[int]judged
			// The table's uninterruptible rule is 2s: watched for 3s.
			for i := range 31 {
				got = judgeOnce(j, t0.Add(time.Duration(i)*100*time.Millisecond), worker(1, c.class))
			}
			jd, over := got[1]
			if over != c.over {
				t.Fatalf("over %v, want %v", over, c.over)
			}
			if over && (jd.reason != "uninterruptible" || jd.span != 3*time.Second) {
				t.Errorf("%+v, want the uninterruptible rule over the 3s seen", jd)
			}
		})
	}
	// A worker that keeps waking (its switches move) is making progress.
	j := testJudge(t)
	for i := range 31 {
		th := worker(1, waitsite.FUSE)
		th.Switches = uint64(i)
		if got := judgeOnce(j, time.Unix(1000, 0).Add(time.Duration(i)*100*time.Millisecond), th); len(got) > 0 {
			t.Fatalf("a worker woken at every poll: %+v", got[1])
		}
	}
}
