package e2e

import (
	"bufio"
	"context"
	"net"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stallmon/stallmon/heartbeat"
	"github.com/stallmon/stallmon/internal/testutil/privtest"
)

// tcpRedis is Debian's redis-server on a loopback TCP port, its DEBUG
// command enabled, killed at the end of the test.
type tcpRedis struct {
	ns   serviceNS // where it runs and its clients connect from
	cmd  *exec.Cmd
	addr string
	done chan struct{}
}

func startTCPRedis(t *testing.T) *tcpRedis {
	t.Helper()
	privtest.Require(t)
	for _, bin := range []string{"redis-server", "redis-cli", "redis-benchmark"} {
		if _, err := exec.LookPath(bin); err != nil {
			privtest.Unavailable(t, "needs "+bin+" (apt-get install redis-server redis-tools): "+err.Error())
		}
	}
	// In a namespace of its own, its port is redis's usual one.
	ns := newServiceNS(t)
	const port = 6379
	dir := t.TempDir()
	r := &tcpRedis{ns: ns, addr: "127.0.0.1:" + itoa(port), done: make(chan struct{})}
	r.cmd = exec.Command("redis-server", "--port", itoa(port), "--bind", "127.0.0.1", "--save", "",
		"--appendonly", "no", "--enable-debug-command", "yes", "--dir", dir, "--logfile", filepath.Join(dir, "redis.log"))
	ns.start(t, r.cmd)
	go func() { r.cmd.Wait(); close(r.done) }()
	t.Cleanup(func() {
		r.cmd.Process.Kill()
		<-r.done
	})
	deadline := time.Now().Add(15 * time.Second)
	for {
		if out, err := r.cli(2*time.Second, "PING"); err == nil && out == "PONG" {
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("redis on %s does not answer PING", r.addr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (r *tcpRedis) cli(timeout time.Duration, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	host, port, _ := net.SplitHostPort(r.addr)
	out, err := r.ns.output(ctx, "redis-cli", append([]string{"-h", host, "-p", port}, args...)...)
	return strings.TrimSpace(string(out)), err
}

// pingUnanswered opens a connection and sends PING: it reports whether
// no answer came within wait (redis is asleep), leaving such a
// connection open until the test ends.
func (r *tcpRedis) pingUnanswered(t *testing.T, wait time.Duration) bool {
	t.Helper()
	conn := r.ns.dial(t, r.addr)
	if _, err := conn.Write([]byte("PING\r\n")); err != nil {
		t.Fatal(err)
	}
	conn.SetReadDeadline(time.Now().Add(wait))
	if _, err := bufio.NewReader(conn).ReadString('\n'); err == nil {
		conn.Close()
		return false
	}
	t.Cleanup(func() { conn.Close() })
	return true
}

// statsField reads one field of INFO stats.
func (r *tcpRedis) statsField(t *testing.T, name string) int {
	t.Helper()
	out, err := r.cli(5*time.Second, "INFO", "stats")
	if err != nil {
		t.Fatalf("INFO stats: %v: %s", err, out)
	}
	for _, line := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), name+":"); ok {
			n, err := strconv.Atoi(v)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatalf("INFO stats has no %s: %s", name, out)
	return 0
}

// redis told DEBUG SLEEP sleeps in clock_nanosleep, a wait by design:
// new clients waiting in its accept queue are what shows it serves
// nobody.
func TestWorkWaitingRedisDebugSleep(t *testing.T) {
	r := startTCPRedis(t)
	c := newCluster(t)
	agent := attachWaiting(t, c, r.cmd.Process.Pid, "redissleep")
	go r.cli(30*time.Second, "DEBUG", "SLEEP", "10")
	// The first client whose PING goes unanswered came while redis
	// slept: from then on new clients wait in the queue.
	var first time.Time
	for deadline := time.Now().Add(10 * time.Second); ; {
		at := time.Now()
		if r.pingUnanswered(t, 200*time.Millisecond) {
			first = at
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("redis kept answering PING after DEBUG SLEEP")
		}
	}
	for range 3 {
		r.pingUnanswered(t, 10*time.Millisecond)
	}
	stalledOnQueue(t, c, agent, r.cmd.Process.Pid, r.addr, first, "clock_nanosleep")
	<-r.done
	if ws := r.cmd.ProcessState.Sys().(syscall.WaitStatus); !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("redis status %v, want SIGKILL", ws)
	}
}

// The same sleep with no new client leaves the queue empty: nothing
// waits on redis, and nothing is flagged.
func TestWorkWaitingRedisSleepWithoutClientsNotFlagged(t *testing.T) {
	r := startTCPRedis(t)
	c := newCluster(t)
	agent := attachWaiting(t, c, r.cmd.Process.Pid, "redisidle")
	const sleep = 3 * waitBudget
	start := time.Now()
	if out, err := r.cli(sleep+10*time.Second, "DEBUG", "SLEEP", strconv.Itoa(int(sleep/time.Second))); err != nil || out != "OK" {
		t.Fatalf("DEBUG SLEEP: %q, %v", out, err)
	}
	if slept := time.Since(start); slept < sleep {
		t.Fatalf("DEBUG SLEEP returned after %v, want %v", slept, sleep)
	}
	woke := time.Now()
	c.WaitPacket("heartbeats after the sleep", 10*time.Second, func(p heartbeat.Packet) bool {
		return time.Unix(0, p.SendTime).Sub(woke) >= time.Second || p.State != heartbeat.StateAlive
	})
	noStall(t, c, agent)
}

// redis-benchmark opening a connection per request (-k 0) keeps the
// accept queue busy for 10s: redis takes every one, and is never flagged.
func TestWorkWaitingRedisBenchmarkNotFlagged(t *testing.T) {
	r := startTCPRedis(t)
	c := newCluster(t)
	agent := attachWaiting(t, c, r.cmd.Process.Pid, "redisbench")
	before := r.statsField(t, "total_connections_received")
	const run = 10 * time.Second
	ctx, cancel := context.WithTimeout(context.Background(), run)
	defer cancel()
	host, port, _ := net.SplitHostPort(r.addr)
	start := time.Now()
	out, err := r.ns.output(ctx, "redis-benchmark", "-h", host, "-p", port, "-c", "20", "-k", "0",
		"-n", "100000000", "-t", "ping,set,get", "-q")
	if ctx.Err() == nil {
		t.Fatalf("redis-benchmark ended before %v: %v: %s", run, err, out)
	}
	conns := r.statsField(t, "total_connections_received") - before
	if conns < 1000 {
		t.Fatalf("redis took %d connections in %v: the benchmark did not load its accept queue", conns, run)
	}
	end := time.Now()
	c.WaitPacket("heartbeats after the benchmark", 10*time.Second, func(p heartbeat.Packet) bool {
		return time.Unix(0, p.SendTime).Sub(end) >= time.Second || p.State != heartbeat.StateAlive
	})
	noStall(t, c, agent)
	t.Logf("redis accepted %d connections in %v under redis-benchmark -k 0, none flagged", conns, end.Sub(start).Round(time.Millisecond))
}
