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
	lines chan string   // stdout's lines after the ready line
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
	p := &Proc{Cmd: cmd, Stdin: stdin, lines: make(chan string, maxLines), done: make(chan struct{})}
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		if sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		for sc.Scan() {
			// Kept for Next up to maxLines: the programs print a few
			// lines each, and a full buffer must not block the reap.
			select {
			case p.lines <- sc.Text():
			default:
			}
		}
		io.Copy(io.Discard, stdout)
		cmd.Wait()
		close(p.lines)
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

// maxLines is how many lines after the ready line Next can still read.
const maxLines = 64

// Next waits for the program's next line, "WORD key=value ...", and
// returns its fields, WORD under the key "". It fails t if the program
// ends or says nothing within timeout.
func (p *Proc) Next(t *testing.T, timeout time.Duration) map[string]string {
	t.Helper()
	select {
	case l, ok := <-p.lines:
		if !ok {
			t.Fatalf("%s exited (%v) before its next line", p.Cmd.Path, p.Cmd.ProcessState)
		}
		f := strings.Fields(l)
		m := map[string]string{}
		for i, kv := range f {
			if i == 0 {
				m[""] = kv
				continue
			}
			k, v, _ := strings.Cut(kv, "=")
			m[k] = v
		}
		return m
	case <-time.After(timeout):
		t.Fatalf("%s: no line within %v", p.Cmd.Path, timeout)
	}
	return nil
}

// Int returns the ready line's field key as a number.
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
