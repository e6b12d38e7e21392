package e2e

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stallmon/stallmon/heartbeat"
	"github.com/stallmon/stallmon/internal/testutil/fusehang"
	"github.com/stallmon/stallmon/internal/testutil/privtest"
)

// A sendfile(2) from a local file to a client that stopped reading sleeps
// on the socket (back-pressure): the client decides when it ends, and the
// built-in table leaves sendfile unbounded on sockets. Judged by the
// stricter of its two fds, the file's 5s, it would stall the node at 5s
// and, under --late-return=fence, kill the service when the client reads
// again. Its wait site says it waits on the socket: never a stall, and
// the heartbeat stays ALIVE before and after the client drains it.
func TestSendfileToStalledClientNotFlagged(t *testing.T) {
	privtest.Require(t)
	path := filepath.Join(t.TempDir(), "big")
	if err := os.WriteFile(path, make([]byte, 4<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, kind := range []string{"tcp", "unix"} {
		t.Run(kind, func(t *testing.T) {
			w := startWorkload(t)
			c := newCluster(t)
			agent := startStallmon(t, append([]string{"attach", "--pid", itoa(w.PID), "--log-format", "json",
				"--node-id", "sendfile-" + kind, "--interval", "200ms", "--metrics-addr", ""}, c.GroupFlags()...)...)
			agent.Events.Next("attached", 10*time.Second)
			c.WaitPacket("ALIVE", 10*time.Second, func(p heartbeat.Packet) bool { return p.State == heartbeat.StateAlive })
			if _, err := w.Do("sendfile-stalled " + kind + " " + path); err != nil {
				t.Fatal(err)
			}
			stalled := time.Now()
			// The file's rule is 5s: watch past it, by two polls and
			// more, at the default poll interval.
			const window = 7 * time.Second
			c.WaitPacket("heartbeats past the file's budget", window+10*time.Second, func(p heartbeat.Packet) bool {
				return time.Unix(0, p.SendTime).Sub(stalled) >= window || p.State != heartbeat.StateAlive
			})
			r, err := w.Do("sendfile-drain")
			if err != nil {
				t.Fatal(err)
			}
			drained := time.Now()
			// A late return would be fenced at the next poll: the
			// heartbeats a second on still say ALIVE, from a live target.
			c.WaitPacket("heartbeats after the client read again", 10*time.Second, func(p heartbeat.Packet) bool {
				return time.Unix(0, p.SendTime).Sub(drained) >= time.Second || p.State != heartbeat.StateAlive
			})
			for _, tp := range c.Seen() {
				if tp.P.State != heartbeat.StateAlive {
					t.Fatalf("non-ALIVE heartbeat while a client applied back-pressure: %+v", tp.P)
				}
			}
			for _, ev := range agent.Events.Drain() {
				if ev["msg"] == "stall" || ev["msg"] == "kill" || ev["msg"] == "late_return" {
					t.Fatalf("false alarm on back-pressure: %v", ev)
				}
			}
			if _, err := w.Do("tids"); err != nil {
				t.Fatalf("the workload did not survive: %v", err)
			}
			ret, _ := r.Int("ret")
			t.Logf("sendfile waited on its client %v, then sent %d bytes: no stall", drained.Sub(stalled).Round(time.Millisecond), ret)
		})
	}
}

// The case the socket side must not hide: a sendfile from a file whose
// FUSE server never answers waits on the file (its folio, through the
// page cache, whatever the file's open flags) and is judged by the file's
// rule. The stall names the wait and its stack.
func TestSendfileFromHungFUSEWaitsOnTheFile(t *testing.T) {
	privtest.Require(t)
	fusehang.Require(t)
	for _, c := range []struct {
		name  string
		opts  fusehang.Options
		waits []string // the wait attribute starts with one of these
	}{
		{"page cache", fusehang.Options{PageCache: true}, []string{"storage ", "fuse "}},
	} {
		t.Run(c.name, func(t *testing.T) {
			w := startWorkload(t)
			fs := fusehang.Mount(t, c.opts)
			agent := startStallmon(t, "attach", "--pid", itoa(w.PID), "--no-heartbeat", "--log-format", "json",
				"--metrics-addr", "", "--budget", "1s", "--kill-after", "1m")
			agent.Events.Next("attached", 10*time.Second)
			r, err := w.Do("sendfile " + fs.File)
			if err != nil {
				t.Fatal(err)
			}
			issued := time.Now()
			tid, _ := r.Int("tid")
			inFD, _ := r.Int("in_fd")
			stall := agent.Events.Next("stall", 10*time.Second)
			after := eventTime(t, stall).Sub(issued)
			wantFields(t, "stall", stall, map[string]any{"tid": tid, "syscall": "sendfile", "fd": inFD, "fd_kind": "regular", "fs": "fuse"})
			wantWait(t, stall, c.waits...)
			// The budget, two polls at the default interval, and room
			// for a loaded machine.
			if limit := time.Second + 200*time.Millisecond + 500*time.Millisecond; after > limit {
				t.Errorf("stall %v after the hang, want within %v", after, limit)
			}
			t.Logf("stall %v after the hang: reason %v, state %v, wait %v; stack %v", after.Round(time.Millisecond),
				stall["reason"], stall["state"], stall["wait"], stall["stack"])
			fs.Release()
		})
	}
}

// wantWait checks a stall event names a wait starting with one of
// prefixes, and carries its stack.
func wantWait(t *testing.T, ev map[string]any, prefixes ...string) {
	t.Helper()
	wait, _ := ev["wait"].(string)
	ok := false
	for _, p := range prefixes {
		ok = ok || strings.HasPrefix(wait, p)
	}
	if !ok {
		t.Errorf("%v: wait %q, want one starting with %q", ev["msg"], wait, prefixes)
	}
	_, site, _ := strings.Cut(wait, " ")
	if stack, _ := ev["stack"].(string); site == "" || !strings.Contains(stack, site) {
		t.Errorf("%v: stack %q, want the frames, %q among them", ev["msg"], ev["stack"], site)
	}
}

// An io-wq worker (iou-wrk) reading a FUSE file whose server never
// answers sleeps in S, in request_wait_answer: interruptible, yet no
// signal of the process will ever wake it, and it is the process's read
// that hangs. Its wait site makes it a stall (by the uninterruptible
// rule, as if in D), reported with the wait on /readyz too; the idle
// workers and SQ thread of TestIdleIOUringNotFlagged, asleep in S where
// io_uring waits for work, are not.
func TestIOUringWorkerOnHungFUSE(t *testing.T) {
	privtest.Require(t)
	fusehang.Require(t)
	w := startWorkload(t)
	fs := fusehang.Mount(t, fusehang.Options{})
	agent := startStallmon(t, "attach", "--pid", itoa(w.PID), "--no-heartbeat", "--log-format", "json",
		"--metrics-addr", "127.0.0.1:0", "--budget", "1s", "--kill-after", "1m")
	addr := agent.Events.Next("metrics_listening", 10*time.Second)["addr"].(string)
	agent.Events.Next("attached", 10*time.Second)
	r, err := w.Do("uring-read " + fs.File + " S")
	if err != nil {
		t.Fatal(err)
	}
	issued := time.Now()
	worker, _ := r.Int("worker_tid")
	stall := agent.Events.NextWhere("stall of the io-wq worker", 10*time.Second, func(ev map[string]any) bool {
		return ev["msg"] == "stall" && ev["tid"] == float64(worker)
	})
	after := eventTime(t, stall).Sub(issued)
	wantFields(t, "stall", stall, map[string]any{"reason": "uninterruptible", "syscall": "none", "kernel_worker": true,
		"state": "interruptible", "wait": "fuse request_wait_answer"})
	wantWait(t, stall, "fuse request_wait_answer")
	if limit := time.Second + 200*time.Millisecond + 500*time.Millisecond; after > limit {
		t.Errorf("stall %v after the read was queued, want within %v", after, limit)
	}
	resp, err := http.Get("http://" + addr + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), "waiting in fuse request_wait_answer") ||
		!strings.Contains(string(body), "request_wait_answer | ") {
		t.Errorf("/readyz: %d %q, want 503 naming the worker's wait and stack", resp.StatusCode, body)
	}
	t.Logf("io-wq worker %d (%v) stalled %v after the read was queued: state %v, wait %v; /readyz: %s", worker,
		stall["comm"], after.Round(time.Millisecond), stall["state"], stall["wait"], strings.TrimSpace(string(body)))
	fs.Release()
}
