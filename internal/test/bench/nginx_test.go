package bench

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stallmon/stallmon/internal/cgroup"
)

// staticFile is the file nginx serves, and its size.
const (
	staticFile = "file.bin"
	staticSize = 4096
)

// nginxServer is Debian's nginx, one worker, serving a static file on
// loopback TCP, loaded by ab (apache2-utils) with n requests from 50
// clients over keep-alive connections.
func nginxServer(s Service, n int) *server {
	var url string
	return &server{
		Service: s,
		tools:   []string{"nginx", "ab"},
		start:   func(t *testing.T, cg cgroup.Dir, cpu int) { url = startNginx(t, cg, cpu) },
		load:    func(cpu int) (int, float64, error) { return apacheBench(url, n, cpu) },
	}
}

// startNginx runs nginx (master and one worker) in cgroup cg, pinned to
// cpu, on a free loopback port, until the test ends, and returns the
// static file's URL once nginx serves it.
func startNginx(t *testing.T, cg cgroup.Dir, cpu int) string {
	dir := t.TempDir()
	root := filepath.Join(dir, "www")
	if err := os.Mkdir(root, 0o755); err != nil {
		t.Fatal(err)
	}
	want := make([]byte, staticSize)
	rand.Read(want)
	if err := os.WriteFile(filepath.Join(root, staticFile), want, 0o644); err != nil {
		t.Fatal(err)
	}
	addr := freeLoopbackAddr(t)
	// One worker: the server has one CPU. No keep-alive limit, so that
	// no case pays for reconnections another does not.
	conf := fmt.Sprintf(`daemon off;
master_process on;
worker_processes 1;
# The files are root's, in a directory only root may enter.
user root;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log;
events { worker_connections 256; }
http {
	access_log off;
	sendfile on;
	keepalive_requests 1000000000;
	client_body_temp_path %[1]s/body;
	proxy_temp_path %[1]s/proxy;
	fastcgi_temp_path %[1]s/fastcgi;
	uwsgi_temp_path %[1]s/uwsgi;
	scgi_temp_path %[1]s/scgi;
	server {
		listen %[2]s;
		root %[3]s;
	}
}
`, dir, addr, root)
	confPath := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	cgFile, err := os.Open(cg.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer cgFile.Close()
	cmd := exec.Command("nginx", "-c", confPath, "-p", dir, "-e", filepath.Join(dir, "error.log"))
	// Straight into its cgroup: the worker is forked there.
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: int(cgFile.Fd())}
	if err := startPinned(cpu, cmd.Start); err != nil {
		t.Fatalf("starting nginx: %v", err)
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
	url := "http://" + addr + "/" + staticFile
	err = waitFor("nginx serving "+url, 15*time.Second, func() (bool, error) {
		select {
		case <-exited:
			b, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			return false, fmt.Errorf("nginx exited: %s", b)
		default:
		}
		got, err := get(url)
		return err == nil && bytes.Equal(got, want), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return url
}

// freeLoopbackAddr is a loopback TCP address nothing listens on now.
// nginx cannot be told to pick a port and say which: another process
// could take this one before nginx does, and nginx then fails to start.
func freeLoopbackAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func get(url string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return io.ReadAll(resp.Body)
}

// apacheBench runs ab pinned to cpu: n GETs of url from 50 clients over
// keep-alive connections. It returns the requests answered and ab's rate.
func apacheBench(url string, n, cpu int) (int, float64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	out, err := runPinned(exec.CommandContext(ctx, "ab", "-q", "-k", "-n", strconv.Itoa(n), "-c", "50", url), cpu)
	if err != nil {
		return 0, 0, err
	}
	return parseAB(string(out), n)
}

// parseAB reads ab's report of n requests: every one complete over a
// kept-alive connection, none failed and none answered other than 2xx,
// and the rate.
func parseAB(out string, n int) (int, float64, error) {
	fields := map[string]string{}
	for line := range strings.Lines(out) {
		if k, v, ok := strings.Cut(line, ":"); ok {
			fields[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	complete, err := strconv.Atoi(fields["Complete requests"])
	if err != nil || complete != n {
		return 0, 0, fmt.Errorf("ab completed %q requests, want %d: %s", fields["Complete requests"], n, out)
	}
	if f := fields["Failed requests"]; f != "0" {
		return 0, 0, fmt.Errorf("ab: %s failed requests: %s", f, out)
	}
	if f, ok := fields["Non-2xx responses"]; ok && f != "0" {
		return 0, 0, fmt.Errorf("ab: %s non-2xx responses: %s", f, out)
	}
	if k := fields["Keep-Alive requests"]; k != strconv.Itoa(n) {
		return 0, 0, fmt.Errorf("ab: %q of %d requests kept alive: %s", k, n, out)
	}
	var rate float64
	if f := strings.Fields(fields["Requests per second"]); len(f) > 0 {
		rate, err = strconv.ParseFloat(f[0], 64)
	}
	if err != nil || rate <= 0 {
		return 0, 0, fmt.Errorf("ab's rate %q: %s", fields["Requests per second"], out)
	}
	return complete, rate, nil
}
