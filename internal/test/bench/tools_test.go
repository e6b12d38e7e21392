package bench

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// tracer is strace or bpftrace running beside the loop.
type tracer struct {
	cmd    *exec.Cmd
	stderr *strings.Builder
	exited chan struct{}
	// detached returns once the tracer no longer affects the loop.
	detached func() error
}

func (tr *tracer) Close() error {
	// Both tools detach and exit on SIGINT (strace lets the tracee go).
	// bpftrace 0.17 notices the signal only when it interrupts its
	// epoll_wait: one that lands between two waits is lost and bpftrace
	// runs on. So the signal is repeated until it exits.
	deadline := time.After(30 * time.Second)
	for {
		if err := tr.cmd.Process.Signal(syscall.SIGINT); err != nil && !errors.Is(err, os.ErrProcessDone) {
			return fmt.Errorf("stopping %s: %w", tr.cmd.Path, err)
		}
		select {
		case <-tr.exited:
			if tr.detached != nil {
				return tr.detached()
			}
			return nil
		case <-time.After(250 * time.Millisecond):
		case <-deadline:
			tr.cmd.Process.Kill()
			<-tr.exited
			return fmt.Errorf("%s still running 30s after SIGINT: killed; stderr: %s", tr.cmd.Path, tr.stderr)
		}
	}
}

func startTracer(cmd *exec.Cmd) (*tracer, error) {
	tr := &tracer{cmd: cmd, stderr: &strings.Builder{}, exited: make(chan struct{})}
	if cmd.Stderr == nil {
		cmd.Stderr = tr.stderr
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", cmd.Path, err)
	}
	go func() { cmd.Wait(); close(tr.exited) }()
	return tr, nil
}

// startStrace attaches `strace -f` to pid, its output thrown away (strace
// still decodes every call), and returns once the kernel names strace as
// pid's tracer.
func startStrace(path string, pid int) (io.Closer, error) {
	tr, err := startTracer(exec.Command(path, "-f", "-qq", "-o", "/dev/null", "-p", strconv.Itoa(pid)))
	if err != nil {
		return nil, err
	}
	tracerPid := func() (uint64, error) { return statusField(pid, "TracerPid") }
	err = waitFor("strace attached", 10*time.Second, func() (bool, error) {
		select {
		case <-tr.exited:
			return false, fmt.Errorf("strace exited: %s", tr.stderr)
		default:
		}
		p, err := tracerPid()
		return p == uint64(tr.cmd.Process.Pid), err
	})
	if err != nil {
		tr.Close()
		return nil, err
	}
	tr.detached = func() error {
		return waitFor("strace detached", 10*time.Second, func() (bool, error) { p, err := tracerPid(); return p == 0, err })
	}
	return tr, nil
}

// bpftraceScript keeps what stallmon's tracker keeps, each thread's
// syscall in flight and its entry time, in bpftrace's usual way: a hash
// map keyed by tid, on the classic raw_syscalls tracepoints (bpftrace
// 0.17, Debian 12's, has no raw tracepoint probes).
const bpftraceScript = `tracepoint:raw_syscalls:sys_enter /pid == %d/ { @inflight[tid] = (args->id, nsecs); }
tracepoint:raw_syscalls:sys_exit /pid == %d/ { delete(@inflight[tid]); }
`

// probesAttached is the line bpftrace writes to stderr once every probe
// is attached, when its environment holds it (its own test suite's hook;
// BEGIN runs before the probes attach, so it cannot tell).
const probesAttached = "__BPFTRACE_NOTIFY_PROBES_ATTACHED"

// startBpftrace runs bpftraceScript on pid and returns once its probes
// are attached.
func startBpftrace(path string, pid int) (io.Closer, error) {
	cmd := exec.Command(path, "-e", fmt.Sprintf(bpftraceScript, pid, pid))
	cmd.Env = append(os.Environ(), probesAttached+"=1")
	// A pipe of our own: exec's StderrPipe would be closed by Wait while
	// the reader below may still drain it.
	stderr, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	cmd.Stderr = w
	tr, err := startTracer(cmd)
	w.Close() // bpftrace has its copy
	if err != nil {
		stderr.Close()
		return nil, err
	}
	// The reader owns the stderr text until it ends, at bpftrace's exit.
	attached, drained := make(chan struct{}), make(chan struct{})
	var text strings.Builder
	go func() {
		defer close(drained)
		defer stderr.Close()
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if sc.Text() == probesAttached {
				close(attached)
				break
			}
			text.WriteString(sc.Text() + "\n")
		}
		io.Copy(io.Discard, stderr)
	}()
	select {
	case <-attached:
		return tr, nil
	case <-tr.exited:
		<-drained
		return nil, fmt.Errorf("bpftrace exited before its probes were attached: %s", text.String())
	case <-time.After(60 * time.Second):
		tr.Close()
		<-drained
		return nil, fmt.Errorf("bpftrace probes not attached within 60s: %s", text.String())
	}
}

// tracefsDir is where bpftrace looks for the tracepoints it attaches.
const tracefsDir = "/sys/kernel/tracing"

// ensureTracefs mounts tracefs if it is not, for bpftrace, and unmounts
// it when the test ends.
func ensureTracefs(t *testing.T) {
	if _, err := os.Stat(tracefsDir + "/events"); err == nil {
		return
	}
	if err := unix.Mount("nodev", tracefsDir, "tracefs", 0, ""); err != nil {
		t.Fatalf("mounting tracefs on %s for bpftrace: %v", tracefsDir, err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(tracefsDir, 0); err != nil {
			t.Logf("leaving tracefs mounted on %s: %v", tracefsDir, err)
		}
	})
}
