// Package etcdtest runs a real etcd (Debian's etcd-server) for one test: a
// single member on loopback, on ports nobody else holds, with its data in
// the test's own directory.
package etcdtest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/stallmon/stallmon/internal/testutil/privtest"
)

// readyTimeout bounds the wait for a fresh member to serve; it serves
// in ~0.2 s here, seconds on a loaded machine.
const readyTimeout = 20 * time.Second

// Server is one running etcd member.
type Server struct {
	// Endpoint is its client URL, http://127.0.0.1:PORT.
	Endpoint string
	// Client talks to it; closed at cleanup.
	Client *clientv3.Client
	cmd    *exec.Cmd
	done   chan struct{}
	log    string
}

// Start runs etcd until the test ends. The ports are picked free and may
// be taken by someone else before etcd binds them: a member that exits
// before it serves is started again on new ports.
func Start(t testing.TB) *Server {
	t.Helper()
	bin := privtest.RequireCommand(t, "etcd")
	if bin == "" {
		return nil
	}
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		s, err := start(t, bin)
		if err == nil {
			return s
		}
		lastErr = err
		t.Logf("etcd attempt %d: %v", attempt+1, err)
	}
	t.Fatalf("starting etcd: %v", lastErr)
	return nil
}

func start(t testing.TB, bin string) (*Server, error) {
	dir, err := os.MkdirTemp("", fmt.Sprintf("stallmon-etcd-%d-", os.Getpid()))
	if err != nil {
		return nil, err
	}
	// etcd wants its data directory private.
	if err := os.Chmod(dir, 0o700); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	client, peer, err := freePorts()
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	clientURL := "http://127.0.0.1:" + strconv.Itoa(client)
	peerURL := "http://127.0.0.1:" + strconv.Itoa(peer)
	s := &Server{Endpoint: clientURL, done: make(chan struct{}), log: filepath.Join(dir, "etcd.log")}
	logf, err := os.Create(s.log)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	defer logf.Close()
	s.cmd = exec.Command(bin,
		"--name", "stallmon-test",
		"--data-dir", filepath.Join(dir, "data"),
		"--listen-client-urls", clientURL, "--advertise-client-urls", clientURL,
		"--listen-peer-urls", peerURL, "--initial-advertise-peer-urls", peerURL,
		"--initial-cluster", "stallmon-test="+peerURL,
		"--logger", "zap", "--log-outputs", "stderr", "--log-level", "warn")
	s.cmd.Stdout, s.cmd.Stderr = logf, logf
	// Its own process group: a test killed mid-way by a signal to its
	// group does not take etcd with it before the cleanup runs.
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := s.cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	go func() { s.cmd.Wait(); close(s.done) }()
	stop := func() {
		s.cmd.Process.Kill()
		<-s.done
		os.RemoveAll(dir)
	}
	if err := s.waitReady(); err != nil {
		out, _ := os.ReadFile(s.log)
		stop()
		return nil, fmt.Errorf("%w; etcd log:\n%s", err, out)
	}
	t.Cleanup(func() {
		s.Client.Close()
		if t.Failed() {
			if out, err := os.ReadFile(s.log); err == nil {
				t.Logf("etcd log:\n%s", out)
			}
		}
		stop()
	})
	return s, nil
}

// waitReady polls until the member answers a read, or it exits.
func (s *Server) waitReady() error {
	c, err := NewClient(s.Endpoint)
	if err != nil {
		return err
	}
	deadline := time.Now().Add(readyTimeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		_, err := c.Get(ctx, "ready")
		cancel()
		if err == nil {
			s.Client = c
			return nil
		}
		select {
		case <-s.done:
			c.Close()
			return fmt.Errorf("etcd exited before serving: %v", s.cmd.ProcessState)
		default:
		}
		if time.Now().After(deadline) {
			c.Close()
			return fmt.Errorf("etcd not serving after %v: %w", readyTimeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// NewClient is a client of endpoint that does not log.
func NewClient(endpoint string) (*clientv3.Client, error) {
	return clientv3.New(clientv3.Config{Endpoints: []string{endpoint}, Logger: zap.NewNop()})
}

// Stop kills the member now (SIGKILL), as a crashed or partitioned etcd.
func (s *Server) Stop() {
	s.cmd.Process.Kill()
	<-s.done
}

// Stopped reports whether the member has exited.
func (s *Server) Stopped() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

func freePorts() (int, int, error) {
	var ports []int
	for range 2 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, 0, err
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports[0], ports[1], nil
}
