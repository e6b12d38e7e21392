package bench

import (
	"bytes"
	"context"
	"encoding/csv"
	"fmt"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stallmon/stallmon/internal/testutil/ctarget"
	"github.com/stallmon/stallmon/internal/testutil/harness"
	"github.com/stallmon/stallmon/internal/testutil/privtest"
)

// runRedis measures redis-benchmark's throughput against Debian's
// redis-server with no tracker, with `stallmon attach` on redis, and with
// it on another process (what every other service of the node pays),
// interleaved in rounds.
func runRedis(t *testing.T, cfg config, tab *Table) {
	for _, bin := range []string{"redis-server", "redis-benchmark", "redis-cli"} {
		if privtest.RequireCommand(t, bin) == "" {
			return
		}
	}
	c := harness.NewCluster(t)
	sock, redisPID := startRedis(t)
	other := startProtocol(t, ctarget.Build(t, "idlethreads"))
	const bench = "redis-benchmark SET+GET"
	none := tab.Add(&Row{Key: KeyRedisBare, Bench: bench, Case: "no tracker", Unit: ReqPerSec})
	type redisCase struct {
		row     *Row
		tracker *Tracker
		pid     int
	}
	cases := []redisCase{{row: none}}
	for i := range Trackers {
		tr := &Trackers[i]
		for _, target := range []struct {
			scope, label string
			pid          int
		}{{"self", "redis", redisPID}, {"other", "another process", other.PID}} {
			cases = append(cases, redisCase{tracker: tr, pid: target.pid, row: tab.Add(&Row{
				Key: RedisKey(tr.Name, target.scope), Bench: bench, Unit: ReqPerSec, Base: none,
				Case: fmt.Sprintf("stallmon (%s) attach on %s", tr.Name, target.label),
			})})
		}
	}
	for round := range cfg.rounds {
		for _, rc := range cases {
			var agent *harness.Proc
			if rc.tracker != nil {
				agent = startAgent(t, *rc.tracker, c, fmt.Sprintf("bench-redis-%d", rc.pid), "--pid", strconv.Itoa(rc.pid))
			}
			rps, err := redisBenchmark(sock, cfg.redisRequests)
			if agent != nil {
				stopAgent(t, agent)
			}
			if err != nil {
				t.Fatalf("round %d, %s: %v", round+1, rc.row.Case, err)
			}
			rc.row.Samples = append(rc.row.Samples, rps)
		}
		t.Logf("redis round %d of %d done", round+1, cfg.rounds)
	}
}

// startRedis runs redis-server in memory only (no persistence), on a unix
// socket, until the test ends, and returns the socket and redis's pid.
func startRedis(t *testing.T) (string, int) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "redis.sock")
	cmd := exec.Command("redis-server", "--port", "0", "--unixsocket", sock, "--dir", dir,
		"--save", "", "--appendonly", "no", "--logfile", filepath.Join(dir, "redis.log"))
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting redis-server: %v", err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Signal(stopSignal)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
	})
	err := waitFor("redis answering PING", 15*time.Second, func() (bool, error) {
		select {
		case <-exited:
			return false, fmt.Errorf("redis-server exited (see %s)", filepath.Join(dir, "redis.log"))
		default:
		}
		out, err := exec.Command("redis-cli", "-s", sock, "PING").Output()
		return err == nil && strings.TrimSpace(string(out)) == "PONG", nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return sock, cmd.Process.Pid
}

// redisBenchmark runs n SETs then n GETs from 50 clients and returns the
// combined throughput: 2n requests over the time both took.
func redisBenchmark(sock string, n int) (float64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "redis-benchmark", "-s", sock, "-n", strconv.Itoa(n), "-c", "50",
		"-t", "set,get", "--csv").Output()
	if err != nil {
		return 0, fmt.Errorf("redis-benchmark: %w", err)
	}
	records, err := csv.NewReader(bytes.NewReader(out)).ReadAll()
	if err != nil {
		return 0, fmt.Errorf("redis-benchmark's CSV: %w", err)
	}
	rps := map[string]float64{}
	for _, rec := range records {
		if len(rec) >= 2 && (rec[0] == "SET" || rec[0] == "GET") {
			if rps[rec[0]], err = strconv.ParseFloat(rec[1], 64); err != nil {
				return 0, fmt.Errorf("redis-benchmark's %s rate %q: %w", rec[0], rec[1], err)
			}
		}
	}
	if rps["SET"] <= 0 || rps["GET"] <= 0 {
		return 0, fmt.Errorf("redis-benchmark gave no SET and GET rates: %q", out)
	}
	return 2 / (1/rps["SET"] + 1/rps["GET"]), nil
}
