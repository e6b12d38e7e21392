package bench

import (
	"bytes"
	"context"
	"encoding/csv"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/stallmon/stallmon/internal/cgroup"
)

// redisServer is Debian's redis-server on a unix socket, loaded by
// redis-benchmark with n requests of each command: SET and GET in memory
// (no persistence), or, aof, SET alone with every write appended to the
// append-only file and fsync(2)ed before redis answers (appendfsync
// always), on a tmpfs of its own so that a disk's latency is not what the
// rows measure: the syscalls are.
func redisServer(s Service, n int, aof bool) *server {
	var sock string
	commands := []string{"SET", "GET"}
	if aof {
		commands = []string{"SET"}
	}
	return &server{
		Service: s,
		tools:   []string{"redis-server", "redis-benchmark", "redis-cli"},
		start:   func(t *testing.T, cg cgroup.Dir, cpu int) { sock = startRedis(t, cg, cpu, aof) },
		load:    func(cpu int) (int, float64, error) { return redisBenchmark(sock, commands, n, cpu) },
	}
}

// startRedis runs redis-server in cgroup cg, pinned to cpu, on a unix
// socket, until the test ends, and returns the socket.
func startRedis(t *testing.T, cg cgroup.Dir, cpu int, aof bool) string {
	dir := t.TempDir()
	sock := filepath.Join(dir, "redis.sock")
	log := filepath.Join(dir, "redis.log")
	args := []string{"--port", "0", "--unixsocket", sock, "--save", "", "--logfile", log}
	if aof {
		data := filepath.Join(dir, "data")
		if err := os.Mkdir(data, 0o700); err != nil {
			t.Fatal(err)
		}
		mountTmpfs(t, data)
		// No rewrite of the file as it grows: a rewrite is a child
		// process in the server's cgroup, whose CPU would fall on
		// whichever case it happened in.
		args = append(args, "--dir", data, "--appendonly", "yes", "--appendfsync", "always",
			"--auto-aof-rewrite-percentage", "0")
	} else {
		args = append(args, "--dir", dir, "--appendonly", "no")
	}
	cgFile, err := os.Open(cg.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer cgFile.Close()
	cmd := exec.Command("redis-server", args...)
	// Straight into its cgroup, so that every thread it ever has is counted.
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: int(cgFile.Fd())}
	if err := startPinned(cpu, cmd.Start); err != nil {
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
	err = waitFor("redis answering PING", 15*time.Second, func() (bool, error) {
		select {
		case <-exited:
			b, _ := os.ReadFile(log)
			return false, fmt.Errorf("redis-server exited: %s", b)
		default:
		}
		out, err := exec.Command("redis-cli", "-s", sock, "PING").Output()
		return err == nil && strings.TrimSpace(string(out)) == "PONG", nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if aof {
		// What the row claims: every write fsynced before the answer.
		out, err := exec.Command("redis-cli", "-s", sock, "CONFIG", "GET", "appendfsync").Output()
		if got := strings.Fields(string(out)); err != nil || len(got) != 2 || got[1] != "always" {
			t.Fatalf("redis's appendfsync is %q (%v), want always", out, err)
		}
	}
	return sock
}

// mountTmpfs mounts a tmpfs on dir until the test ends.
func mountTmpfs(t *testing.T, dir string) {
	t.Helper()
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=1g,mode=0700"); err != nil {
		t.Fatalf("mounting a tmpfs on %s: %v", dir, err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(dir, 0); err != nil {
			t.Errorf("unmounting %s: %v", dir, err)
			unix.Unmount(dir, unix.MNT_DETACH)
		}
	})
}

// redisBenchmark runs redis-benchmark pinned to cpu: n requests of each
// of commands from 50 clients. It returns the requests made and their
// combined rate: all of them over the time they took together.
func redisBenchmark(sock string, commands []string, n, cpu int) (int, float64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	out, err := runPinned(exec.CommandContext(ctx, "redis-benchmark", "-s", sock, "-n", strconv.Itoa(n), "-c", "50",
		"-t", strings.ToLower(strings.Join(commands, ",")), "--csv"), cpu)
	if err != nil {
		return 0, 0, err
	}
	records, err := csv.NewReader(bytes.NewReader(out)).ReadAll()
	if err != nil {
		return 0, 0, fmt.Errorf("redis-benchmark's CSV: %w", err)
	}
	rps := map[string]float64{}
	for _, rec := range records {
		if len(rec) >= 2 {
			if v, err := strconv.ParseFloat(rec[1], 64); err == nil {
				rps[rec[0]] = v
			}
		}
	}
	var seconds float64 // per request of each command, added up
	for _, c := range commands {
		if rps[c] <= 0 {
			return 0, 0, fmt.Errorf("redis-benchmark gave no %s rate: %q", c, out)
		}
		seconds += 1 / rps[c]
	}
	return n * len(commands), float64(len(commands)) / seconds, nil
}
