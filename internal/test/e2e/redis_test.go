package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stallmon/stallmon/heartbeat"
	"github.com/stallmon/stallmon/internal/budget"
	"github.com/stallmon/stallmon/internal/testutil/fusehang"
	"github.com/stallmon/stallmon/internal/testutil/privtest"
)

// redisCLI runs redis-cli against the unix socket, bounded in time.
func redisCLI(sock string, timeout time.Duration, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, "redis-cli", append([]string{"-s", sock}, args...)...).CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// Debian's redis-server under stallmon run --restart=on-failure, its
// append-only file (fsync always) on a FUSE loopback whose writes stop
// being answered: the write of a SET hangs, redis is killed at
// kill_after and started again as a new incarnation, which a listener
// hears after FENCED; once the storage answers again, the new redis
// serves (PING, SET, GET).
func TestRunRedisOnHungStorage(t *testing.T) {
	privtest.Require(t)
	fusehang.Require(t)
	for _, bin := range []string{"redis-server", "redis-cli"} {
		if _, err := exec.LookPath(bin); err != nil {
			privtest.Unavailable(t, "needs "+bin+" (apt-get install redis-server redis-tools): "+err.Error())
			return
		}
	}
	c := newCluster(t)
	fs := fusehang.Mount(t, fusehang.Options{Loopback: t.TempDir(), HonourInterrupts: true})
	dir := t.TempDir()
	sock := filepath.Join(dir, "redis.sock")
	// The built-in table, with the flushes bounded like everything else
	// at 1s/3s: its 30s/120s for fsync would make a long test.
	table := strings.Replace(string(budget.DefaultYAML()), "  fdatasync: {budget: 30s, kill_after: 120s}\n",
		"  fdatasync: {budget: 1s, kill_after: 3s}\n", 1)
	table = strings.Replace(table, "  fsync: {budget: 30s, kill_after: 120s}\n", "  fsync: {budget: 1s, kill_after: 3s}\n", 1)
	if !strings.Contains(table, "fdatasync: {budget: 1s") || !strings.Contains(table, "  fsync: {budget: 1s") {
		t.Fatal("the built-in table's fsync entries changed: update this test")
	}
	tablePath := filepath.Join(dir, "table.yaml")
	if err := os.WriteFile(tablePath, []byte(table), 0o644); err != nil {
		t.Fatal(err)
	}
	agent := startStallmon(t, append(append([]string{"run", "--log-format", "json", "--metrics-addr", "",
		"--node-id", "redis", "--interval", "100ms", "--config", tablePath, "--budget", "1s", "--kill-after", "3s",
		"--restart=on-failure", "--restart-delay", "200ms", "--stop-timeout", "5s"}, c.GroupFlags()...),
		// Its log to a file: stallmon's own stdout carries the events.
		"--", "redis-server", "--port", "0", "--unixsocket", sock, "--dir", fs.Dir,
		"--appendonly", "yes", "--appendfsync", "always", "--save", "", "--logfile", filepath.Join(dir, "redis.log"))...)
	agent.Events.Next("service_started", 10*time.Second)
	waitPong(t, sock)
	if out, err := redisCLI(sock, 5*time.Second, "SET", "before", "1"); err != nil || out != "OK" {
		t.Fatalf("SET before the hang: %q, %v", out, err)
	}

	fs.HoldWrites()
	hung := time.Now()
	go redisCLI(sock, 30*time.Second, "SET", "during", "1") // its append-only write hangs
	stall := agent.Events.Next("stall", 15*time.Second)
	wantFields(t, "stall", stall, map[string]any{"comm": "redis-server", "fs": "fuse"})
	agent.Events.Next("kill", 15*time.Second)
	exited := agent.Events.Next("service_exited", 10*time.Second)
	wantFields(t, "service_exited", exited, map[string]any{"exit_code": 128 + int(syscall.SIGKILL)})
	restarted := agent.Events.Next("service_started", 10*time.Second)
	wantFields(t, "restart", restarted, map[string]any{"incarnation": 2})
	restartedAt := time.Now()
	fenced := c.WaitPacket("FENCED", 10*time.Second, func(p heartbeat.Packet) bool { return p.State == heartbeat.StateFenced })
	c.WaitPacket("ALIVE of the new incarnation", 15*time.Second, func(p heartbeat.Packet) bool {
		return p.State == heartbeat.StateAlive && p.Incarnation > fenced.Incarnation
	})

	fs.Release()
	waitPong(t, sock)
	if out, err := redisCLI(sock, 5*time.Second, "SET", "after", "1"); err != nil || out != "OK" {
		t.Fatalf("SET after the hang lifted: %q, %v", out, err)
	}
	if out, err := redisCLI(sock, 5*time.Second, "GET", "before"); err != nil || out != "1" {
		t.Errorf("GET before after the restart: %q, %v (the append-only file kept it)", out, err)
	}
	t.Logf("hang to stall %v (%v in %v, state %v), hang to restart %v",
		eventTime(t, stall).Sub(hung).Round(time.Millisecond), stall["reason"], stall["syscall"], stall["state"],
		restartedAt.Sub(hung).Round(time.Millisecond))

	if err := agent.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := agent.Wait(t, 15*time.Second); code != 0 {
		t.Errorf("stallmon run exited %d after SIGTERM, want 0 (redis shuts down cleanly)", code)
	}
}

// waitPong waits, up to 15s, for redis to answer PING.
func waitPong(t *testing.T, sock string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		out, err := redisCLI(sock, 2*time.Second, "PING")
		if err == nil && out == "PONG" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("redis does not answer PING: %q, %v", out, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
