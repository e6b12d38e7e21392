package hbtest

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stallmon/stallmon/internal/testutil/ctarget"
)

// Interval is the C service's heartbeat period, as in the seed.
const Interval = 100 * time.Millisecond

// Service is a running hbservice.
type Service struct {
	Cmd     *exec.Cmd
	PID     int
	in      io.WriteCloser
	out     *bufio.Reader
	answers chan string // the main thread's answers, in order
	done    chan struct{}
}

// StartService starts hbservice sending to group as node, in the cgroup
// directory cgroup when not "", and waits for its heartbeat socket. It is
// killed when the test ends.
func StartService(t testing.TB, group *net.UDPAddr, node, cgroup string) *Service {
	t.Helper()
	bin := ctarget.Build(t, "hbservice")
	cmd := exec.Command(bin, group.IP.String(), strconv.Itoa(group.Port), node, strconv.Itoa(int(Interval/time.Millisecond)))
	if cgroup != "" {
		f, err := os.Open(cgroup)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: int(f.Fd())}
	}
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("hbtest: starting hbservice: %v", err)
	}
	s := &Service{Cmd: cmd, PID: cmd.Process.Pid, in: in, out: bufio.NewReader(out), answers: make(chan string, 1024), done: make(chan struct{})}
	go func() {
		cmd.Wait()
		close(s.done)
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		in.Close()
		<-s.done
	})
	line, err := s.out.ReadString('\n')
	if err != nil || line != "ready\n" {
		t.Fatalf("hbtest: hbservice said %q, %v", line, err)
	}
	// Drained, so that a main thread answering many requests never
	// waits on a full pipe.
	go func() {
		defer close(s.answers)
		for {
			line, err := s.out.ReadString('\n')
			if err != nil {
				return
			}
			select {
			case s.answers <- strings.TrimSuffix(line, "\n"):
			default: // nobody asked for it (Read): dropped
			}
		}
	}()
	return s
}

// Serve has the main thread read path and waits for its answer, "ok N"
// (N the bytes read, -1 on an error), for at most timeout.
func (s *Service) Serve(path string, timeout time.Duration) (string, error) {
	if err := s.Read(path); err != nil {
		return "", err
	}
	select {
	case a, ok := <-s.answers:
		if !ok {
			return "", fmt.Errorf("hbtest: the service exited")
		}
		return a, nil
	case <-time.After(timeout):
		return "", fmt.Errorf("hbtest: no answer for %s within %v", path, timeout)
	}
}

// Read asks the service's main thread to read path; the answer is not
// waited for (a read on a hung file system never answers).
func (s *Service) Read(path string) error {
	if strings.Contains(path, "\n") {
		return fmt.Errorf("hbtest: path %q holds a newline", path)
	}
	_, err := io.WriteString(s.in, path+"\n")
	return err
}

// Done is closed once the service has exited.
func (s *Service) Done() <-chan struct{} { return s.done }

// Exited reports whether the service has exited.
func (s *Service) Exited() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}
