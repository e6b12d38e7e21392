// Package nginxtest runs Debian's nginx for a test: a master and two
// workers in the foreground, in a cgroup the test gives, serving a
// directory over a unix socket (no port to collide on), with sendfile on.
package nginxtest

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stallmon/stallmon/internal/testutil/privtest"
)

// Server is a running nginx.
type Server struct {
	Cmd    *exec.Cmd // the master
	Socket string
	dir    string
	done   chan struct{}
}

// Require skips t unless nginx is installed (fails it in strict mode).
func Require(t testing.TB) {
	t.Helper()
	privtest.Require(t)
	if _, err := exec.LookPath("nginx"); err != nil {
		privtest.Unavailable(t, fmt.Sprintf("needs nginx (apt-get install nginx-light): %v", err))
	}
}

// Options changes how StartWith runs nginx.
type Options struct {
	// Listen adds a TCP listener (e.g. "127.0.0.1:8080") beside the
	// unix socket, for load generators that speak TCP only (ab).
	Listen string
	// Launch starts the master; cmd.Start when nil. A test passes one
	// that starts it in a network namespace.
	Launch func(cmd *exec.Cmd) error
}

// Start runs nginx serving root, its master started straight into the
// cgroup directory cgroupDir (so every worker is there from the start).
// It returns once nginx answers; the test's end stops it.
func Start(t testing.TB, root, cgroupDir string) *Server {
	t.Helper()
	return StartWith(t, root, cgroupDir, Options{})
}

// StartWith is Start with o.
func StartWith(t testing.TB, root, cgroupDir string, o Options) *Server {
	t.Helper()
	Require(t)
	dir := t.TempDir()
	s := &Server{Socket: filepath.Join(dir, "nginx.sock"), dir: dir, done: make(chan struct{})}
	listen := ""
	if o.Listen != "" {
		listen = "\t\tlisten " + o.Listen + ";\n"
	}
	conf := fmt.Sprintf(`daemon off;
master_process on;
worker_processes 2;
# Root's workers: a FUSE mount is only open to the user who mounted it.
user root;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log info;
events { worker_connections 64; }
http {
	access_log off;
	sendfile on;
	client_body_temp_path %[1]s/body;
	proxy_temp_path %[1]s/proxy;
	fastcgi_temp_path %[1]s/fastcgi;
	uwsgi_temp_path %[1]s/uwsgi;
	scgi_temp_path %[1]s/scgi;
	server {
		listen unix:%[2]s;
%[4]s		root %[3]s;
		location = /healthz { return 200 "ok\n"; }
	}
}
`, dir, s.Socket, root, listen)
	confPath := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	cg, err := os.Open(cgroupDir)
	if err != nil {
		t.Fatal(err)
	}
	defer cg.Close()
	s.Cmd = exec.Command("nginx", "-c", confPath, "-p", dir, "-e", filepath.Join(dir, "error.log"))
	s.Cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: int(cg.Fd())}
	launch := o.Launch
	if launch == nil {
		launch = (*exec.Cmd).Start
	}
	if err := launch(s.Cmd); err != nil {
		t.Fatalf("starting nginx: %v", err)
	}
	go func() {
		s.Cmd.Wait()
		close(s.done)
	}()
	t.Cleanup(func() {
		s.Cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-s.done:
		case <-time.After(10 * time.Second):
			s.Cmd.Process.Kill()
			<-s.done
		}
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			t.Logf("nginx error.log:\n%s", b)
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		body, err := s.Get(context.Background(), "/healthz")
		if err == nil && strings.TrimSpace(body) == "ok" {
			return s
		}
		select {
		case <-s.done:
			b, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			t.Fatalf("nginx exited at start (%v): %s", s.Cmd.ProcessState, b)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("nginx not answering after 10s: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Done is closed once the master exited.
func (s *Server) Done() <-chan struct{} { return s.done }

// Get fetches path and returns the body.
func (s *Server) Get(ctx context.Context, path string) (string, error) {
	c := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", s.Socket)
		},
		DisableKeepAlives: true,
	}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://nginx"+path, nil)
	if err != nil {
		return "", err
	}
	resp, err := c.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return string(b), fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	return string(b), nil
}
