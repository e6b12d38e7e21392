package ctarget

import (
	"bufio"
	"context"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Proc is a started program and the fields of its ready line.
type Proc struct {
	Cmd   *exec.Cmd
	Stdin io.WriteCloser
	Ready map[string]string
	done  chan struct{} // closed once it exited; Cmd.ProcessState then set
}

// Done is closed once the program exited.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Start starts bin and waits for its "ready key=value ..." line. The
// process is killed and reaped when the test ends if still running.
func Start(t *testing.T, bin string, args ...string) *Proc {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", bin, err)
	}
	p := &Proc{Cmd: cmd, Stdin: stdin, done: make(chan struct{})}
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		if sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		io.Copy(io.Discard, stdout)
		cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		cancel()
		<-p.done
	})
	select {
	case l, ok := <-lines:
		f := strings.Fields(l)
		if !ok || len(f) == 0 || f[0] != "ready" {
			t.Fatalf("%s: first line %q, want ready ...", bin, l)
		}
		p.Ready = map[string]string{}
		for _, kv := range f[1:] {
			k, v, _ := strings.Cut(kv, "=")
			p.Ready[k] = v
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: no ready line within 10s", bin)
	}
	return p
}

func (p *Proc) Int(t *testing.T, key string) int {
	t.Helper()
	n, err := strconv.Atoi(p.Ready[key])
	if err != nil {
		t.Fatalf("ready line %v: %s: %v", p.Ready, key, err)
	}
	return n
}

// Wait waits for the exit and checks its status was 0.
func (p *Proc) Wait(t *testing.T, timeout time.Duration) {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(timeout):
		t.Fatalf("%s still running after %v", p.Cmd.Path, timeout)
	}
	if !p.Cmd.ProcessState.Success() {
		t.Fatalf("%s: %v, want exit status 0", p.Cmd.Path, p.Cmd.ProcessState)
	}
}
