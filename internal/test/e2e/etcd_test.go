package e2e

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/stallmon/stallmon/internal/testutil/etcdtest"
	"github.com/stallmon/stallmon/internal/testutil/fusehang"
	"github.com/stallmon/stallmon/internal/testutil/harness"
	"github.com/stallmon/stallmon/internal/testutil/privtest"
	"github.com/stallmon/stallmon/internal/workload"
)

// The etcd snippets of docs/integrations.md, run as they are: the active node's
// stallmon, a standby's etcdctl elect, and a watcher's etcdctl watch.
var (
	etcdActiveScript  = filepath.Join(root, "deploy", "etcd", "stallmon-etcd.sh")
	etcdStandbyScript = filepath.Join(root, "deploy", "etcd", "standby.sh")
	etcdWatchScript   = filepath.Join(root, "deploy", "etcd", "watch.sh")
)

const (
	etcdTrials = 3
	etcdTTL    = 2 * time.Second // the snippet's --etcd-ttl
	// etcdPublish is the agent's publishing interval without a
	// heartbeat: a stall goes out at once, a lease is refreshed at most
	// this often.
	etcdPublish = 500 * time.Millisecond
)

// etcdNode is one active node: a service, stallmon run by the snippet,
// and the file its hooks append to.
type etcdNode struct {
	name   string
	w      *workload.Proc
	agent  *harness.Proc
	hooks  string
	srv    *etcdtest.Server
	elect  string
	leadAt time.Time
}

// startEtcdNode runs the active node's snippet for a fresh workload and
// waits until stallmon leads the election.
func startEtcdNode(t *testing.T, srv *etcdtest.Server, election string, w *workload.Proc, flags ...string) *etcdNode {
	t.Helper()
	n := &etcdNode{name: fmt.Sprintf("active-%d", os.Getpid()), w: w, srv: srv, elect: election,
		hooks: filepath.Join(t.TempDir(), "hooks")}
	hook := fmt.Sprintf(`echo "$STALLMON_EVENT $STALLMON_NODE $STALLMON_STATE $STALLMON_REASON" >> '%s'`, n.hooks)
	args := []string{
		"PATH=" + filepath.Dir(stallmonBin) + ":" + os.Getenv("PATH"),
		"SERVICE_PID=" + itoa(w.PID), "NODE=" + n.name, "ETCD_ENDPOINTS=" + srv.Endpoint,
		"ELECTION=" + election, "ON_ELECTED=" + hook, "ON_DEMOTED=" + hook,
		"/bin/sh", etcdActiveScript,
		"--no-heartbeat", "--log-format", "json", "--poll-interval", "100ms", "--metrics-addr", "",
	}
	// env execs sh, sh execs stallmon: one process, which e2e signals.
	n.agent = harness.Start(t, "/usr/bin/env", append(args, flags...)...)
	n.agent.Events.Next("attached", 20*time.Second)
	n.agent.Events.Next("etcd_elected", 10*time.Second)
	n.leadAt = time.Now()
	if l := etcdLeader(t, srv.Client, election); l != n.name {
		t.Fatalf("etcd says %q leads %s, want %q", l, election, n.name)
	}
	return n
}

// hookLines waits for the hooks file to hold n lines and returns them.
func (n *etcdNode) hookLines(t *testing.T, want int) []string {
	t.Helper()
	var lines []string
	pollUntil(t, fmt.Sprintf("%d hook lines", want), 5*time.Second, func() bool {
		b, _ := os.ReadFile(n.hooks)
		lines = strings.Split(strings.TrimSpace(string(b)), "\n")
		return len(b) > 0 && len(lines) >= want
	})
	return lines
}

// standby is a peer waiting in the election through the snippet.
type standby struct {
	name    string
	elected chan time.Time
}

// startStandby runs the standby snippet and waits until its candidacy is
// in etcd, behind the active node's.
func startStandby(t *testing.T, srv *etcdtest.Server, election string) *standby {
	t.Helper()
	privtest.RequireCommand(t, "etcdctl")
	sb := &standby{name: fmt.Sprintf("standby-%d", os.Getpid()), elected: make(chan time.Time, 1)}
	cmd := exec.Command("/bin/sh", etcdStandbyScript)
	cmd.Env = append(os.Environ(), "ETCD_ENDPOINTS="+srv.Endpoint, "ELECTION="+election, "NODE="+sb.name)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		// etcdctl prints the leader key, then the value, once elected.
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if sc.Text() == sb.name {
				sb.elected <- time.Now()
			}
		}
	}()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
		if t.Failed() {
			t.Logf("etcdctl elect stderr:\n%s", stderr.String())
		}
	})
	pollUntil(t, "standby's candidacy in etcd", 5*time.Second, func() bool {
		resp, err := srv.Client.Get(t.Context(), election+"/", clientv3.WithPrefix())
		return err == nil && len(resp.Kvs) == 2
	})
	return sb
}

// waitElected returns when the standby was elected, failing after timeout.
func (sb *standby) waitElected(t *testing.T, timeout time.Duration) time.Time {
	t.Helper()
	select {
	case at := <-sb.elected:
		return at
	case <-time.After(timeout):
		t.Fatalf("standby not elected within %v", timeout)
		return time.Time{}
	}
}

// A service whose read hangs on a FUSE mount stalls; stallmon resigns the
// election for it at once, and the standby, waiting through the snippet
// of docs/integrations.md, leads well within the budget's handover bound.
// The kill that follows (FENCED) revokes the node's lease: its key goes at
// once, where the stall alone would have left it to expire.
func TestEtcdHandoverOnHang(t *testing.T) {
	privtest.Require(t)
	fusehang.Require(t)
	const budget, killAfter = 500 * time.Millisecond, 1500 * time.Millisecond
	srv := etcdtest.Start(t)
	watch := startEtcdWatch(t, srv)
	var handovers, keyGone []time.Duration
	for trial := range etcdTrials {
		election := fmt.Sprintf("hang-%d-%d", os.Getpid(), trial)
		w := startWorkload(t)
		fs := fusehang.Mount(t, fusehang.Options{HonourInterrupts: true})
		n := startEtcdNode(t, srv, election, w, "--budget", budget.String(), "--kill-after", killAfter.String())
		sb := startStandby(t, srv, election)
		// The office holds while the service is alive: over a TTL,
		// so only stallmon's keep-alives can keep it.
		select {
		case <-sb.elected:
			t.Fatal("standby elected while the service is alive")
		case <-time.After(etcdTTL + 500*time.Millisecond):
		}

		if _, err := w.Do("read-file " + fs.File); err != nil {
			t.Fatal(err)
		}
		hung := time.Now()
		at := sb.waitElected(t, budget+5*time.Second)
		stall := n.agent.Events.Next("stall", 5*time.Second)
		handovers = append(handovers, at.Sub(hung))
		t.Logf("trial %d: read hung to standby elected %v (stall event to elected %v)", trial+1,
			at.Sub(hung).Round(time.Millisecond), at.Sub(eventTime(t, stall)).Round(time.Millisecond))
		// The stall is judged at the budget, published at once and
		// resigned in one round trip; polling adds up to an interval.
		if bound := budget + time.Second; at.Sub(hung) > bound {
			t.Errorf("trial %d: standby elected %v after the hang, want within %v", trial+1, at.Sub(hung), bound)
		}
		if lines := n.hookLines(t, 2); lines[1] != "demoted "+n.name+" stalled stalled" {
			t.Errorf("trial %d: hooks ran %q, want elected then demoted at the stall", trial+1, lines)
		}
		watch.waitValue(t, "/stallmon/nodes/"+n.name, `"state":"stalled"`, 5*time.Second)

		kill := n.agent.Events.Next("kill", killAfter+5*time.Second)
		gone := watch.waitDelete(t, "/stallmon/nodes/"+n.name, 5*time.Second)
		keyGone = append(keyGone, gone.Sub(eventTime(t, kill)))
		t.Logf("trial %d: kill (FENCED) to node key deleted %v", trial+1, gone.Sub(eventTime(t, kill)).Round(time.Millisecond))
		if code := n.agent.Wait(t, 10*time.Second); code != exitKilled {
			t.Fatalf("trial %d: stallmon exited %d, want %d (killed)", trial+1, code, exitKilled)
		}
		if d := gone.Sub(eventTime(t, kill)); d > time.Second {
			t.Errorf("trial %d: key deleted %v after the kill, want the lease revoked at once", trial+1, d)
		}
	}
	t.Logf("hang to standby elected over %d trials: %v (budget %v)", etcdTrials, handovers, budget)
	t.Logf("kill (FENCED) to node key deleted: %v", keyGone)
}

// A service that dies while stallmon leads for it (FENCED, final): the
// lease is revoked at once and the standby leads within a second.
func TestEtcdHandoverOnExit(t *testing.T) {
	privtest.Require(t)
	srv := etcdtest.Start(t)
	var handovers []time.Duration
	for trial := range etcdTrials {
		election := fmt.Sprintf("exit-%d-%d", os.Getpid(), trial)
		n := startEtcdNode(t, srv, election, startWorkload(t))
		sb := startStandby(t, srv, election)
		if err := syscall.Kill(n.w.PID, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		exited := n.agent.Events.Next("target_exited", 5*time.Second)
		at := sb.waitElected(t, etcdTTL+5*time.Second)
		d := at.Sub(eventTime(t, exited))
		handovers = append(handovers, d)
		t.Logf("trial %d: target_exited (FENCED) to standby elected %v", trial+1, d.Round(time.Millisecond))
		if d > time.Second {
			t.Errorf("trial %d: standby elected %v after FENCED, want within a second (the lease is revoked)", trial+1, d)
		}
		if lines := n.hookLines(t, 2); lines[1] != "demoted "+n.name+" fenced fenced" {
			t.Errorf("trial %d: hooks ran %q, want elected then demoted when fenced", trial+1, lines)
		}
		n.agent.Wait(t, 10*time.Second)
	}
	t.Logf("FENCED to standby elected over %d trials: %v", etcdTrials, handovers)
}

// stallmon itself killed (SIGKILL: no last word) while it leads: nothing
// refreshes the lease any more, and the standby leads within the TTL.
func TestEtcdHandoverWhenStallmonDies(t *testing.T) {
	privtest.Require(t)
	srv := etcdtest.Start(t)
	election := fmt.Sprintf("die-%d", os.Getpid())
	n := startEtcdNode(t, srv, election, startWorkload(t))
	sb := startStandby(t, srv, election)
	if err := n.agent.Cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	at := sb.waitElected(t, etcdTTL+5*time.Second)
	t.Logf("stallmon SIGKILLed to standby elected %v (TTL %v)", at.Sub(killed).Round(time.Millisecond), etcdTTL)
	// The last keep-alive went out up to a publishing interval before
	// the kill; etcd looks for expired leases every 500 ms.
	if bound := etcdTTL + time.Second; at.Sub(killed) > bound {
		t.Errorf("standby elected %v after stallmon died, want within %v", at.Sub(killed), bound)
	}
}

// etcdWatch runs the watcher snippet and collects its events.
type etcdWatch struct {
	events chan etcdWatchEvent
	seen   []etcdWatchEvent
}

type etcdWatchEvent struct {
	typ, key, value string
	at              time.Time
}

func startEtcdWatch(t *testing.T, srv *etcdtest.Server) *etcdWatch {
	t.Helper()
	privtest.RequireCommand(t, "etcdctl")
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, "/bin/sh", etcdWatchScript)
	cmd.Env = append(os.Environ(), "ETCD_ENDPOINTS="+srv.Endpoint)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w := &etcdWatch{events: make(chan etcdWatchEvent, 64)}
	go func() {
		// "simple" output: the type, the key, and for a PUT the value,
		// one per line.
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			ev := etcdWatchEvent{typ: sc.Text(), at: time.Now()}
			if !sc.Scan() {
				return
			}
			ev.key = sc.Text()
			if ev.typ == "PUT" && sc.Scan() {
				ev.value = sc.Text()
			}
			w.events <- ev
		}
	}()
	t.Cleanup(func() { cancel(); cmd.Wait() })
	// etcdctl watches from the current revision once connected: wait
	// for it to see a write of ours.
	pollUntil(t, "etcdctl watch connected", 5*time.Second, func() bool {
		if _, err := srv.Client.Put(t.Context(), "/stallmon/nodes/probe", "{}"); err != nil {
			t.Fatal(err)
		}
		select {
		case ev := <-w.events:
			w.seen = append(w.seen, ev)
			return true
		case <-time.After(200 * time.Millisecond):
			return false
		}
	})
	if _, err := srv.Client.Delete(t.Context(), "/stallmon/nodes/probe"); err != nil {
		t.Fatal(err)
	}
	return w
}

func (w *etcdWatch) next(t *testing.T, what string, timeout time.Duration, match func(etcdWatchEvent) bool) etcdWatchEvent {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case ev := <-w.events:
			w.seen = append(w.seen, ev)
			if match(ev) {
				return ev
			}
		case <-deadline:
			t.Fatalf("etcdctl watch: no %s within %v; saw %v", what, timeout, w.seen)
		}
	}
}

func (w *etcdWatch) waitValue(t *testing.T, key, contains string, timeout time.Duration) {
	t.Helper()
	w.next(t, "PUT "+key+" with "+contains, timeout, func(ev etcdWatchEvent) bool {
		return ev.typ == "PUT" && ev.key == key && strings.Contains(ev.value, contains)
	})
}

func (w *etcdWatch) waitDelete(t *testing.T, key string, timeout time.Duration) time.Time {
	t.Helper()
	return w.next(t, "DELETE "+key, timeout, func(ev etcdWatchEvent) bool {
		return ev.typ == "DELETE" && ev.key == key
	}).at
}

// etcdLeader is the value of the election's leader, "" for none.
func etcdLeader(t *testing.T, c *clientv3.Client, election string) string {
	t.Helper()
	resp, err := c.Get(t.Context(), election+"/", clientv3.WithFirstCreate()...)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Kvs) == 0 {
		return ""
	}
	return string(resp.Kvs[0].Value)
}

// pollUntil polls cond until it holds, failing after timeout.
func pollUntil(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Bad etcd flags are usage errors, refused before anything is attached.
func TestAttachEtcdBadInput(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		msg  string
	}{
		{"election without endpoints", []string{"--etcd-election", "svc"}, "need --etcd-endpoints"},
		{"hook without endpoints", []string{"--on-demoted", "true"}, "need --etcd-endpoints"},
		{"hook without election", []string{"--etcd-endpoints", "127.0.0.1:2379", "--on-elected", "true"}, "hooks given without an election"},
		{"ttl under etcd's minimum", []string{"--etcd-endpoints", "127.0.0.1:2379", "--etcd-ttl", "1s"}, "no less than 2s"},
		{"ttl not whole seconds", []string{"--etcd-endpoints", "127.0.0.1:2379", "--etcd-ttl", "2500ms"}, "whole seconds"},
		{"prefix without slash", []string{"--etcd-endpoints", "127.0.0.1:2379", "--etcd-prefix", "/stallmon"}, "must end with /"},
		{"empty endpoint", []string{"--etcd-endpoints", "127.0.0.1:2379,"}, `etcd endpoint ""`},
		{"hook timeout", []string{"--etcd-endpoints", "127.0.0.1:2379", "--etcd-hook-timeout", "0s"}, "--etcd-hook-timeout must be positive"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"attach", "--pid", "1", "--no-heartbeat", "--node-id", "n1"}, tc.args...)
			code, stderr := runStallmon(t, nil, args...)
			if code != exitUsage || !strings.Contains(stderr, tc.msg) {
				t.Fatalf("exit %d, stderr %q; want exit %d with %q", code, stderr, exitUsage, tc.msg)
			}
		})
	}
}
