package vm

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// vm describes one boot.
type vm struct {
	arch           *guestArch
	kernel, initrd string
	cmdline        []string // added to the console and panic settings
	log            string   // console log, each line prefixed by host time since start
	timeout        time.Duration
	kvm            bool
}

// vmResult is what the console and QEMU's exit code told about a boot.
type vmResult struct {
	qemuExit  int // -1 if QEMU was killed
	status    int // the guest's verdict via isa-debug-exit (without it: the console's, if QEMU exited 0), -1 without one
	done      int // status on the console's "done" line, -1 without one
	kernel    string
	boot, run time.Duration // QEMU start to /init's first line; from there to QEMU's exit
	timedOut  bool
	insmodErr []string
	packages  []*packageRun   // in the order the guest ran them
	lines     []string        // the whole console, for failure reports
	times     []time.Duration // when each line arrived, from QEMU's start
	extra     []string        // results the host measured (scenarioBoot)
	wantReset bool            // the boot is meant to end in a guest reset
}

// packageRun is one guest test binary's run.
type packageRun struct {
	name     string
	rc       int // -1 if it never finished
	duration time.Duration
	output   []string
}

// guestCPUs is each guest's vCPUs: two, so that a stuck thread and the
// agent watching it do not share one.
const guestCPUs = 2

// The guest's verdict leaves as QEMU's exit code: (status << 1) | 1.
const debugExitPort = "isa-debug-exit,iobase=0xf4,iosize=0x04"

func (v vm) args() []string {
	cmdline := append(append(v.arch.kernelArgs(), "quiet", "panic=-1"), v.cmdline...)
	args := append(v.arch.machine(v.kvm),
		"-m", "1024", "-smp", strconv.Itoa(guestCPUs),
		"-nographic", "-no-reboot", "-nic", "none",
		"-kernel", v.kernel, "-initrd", v.initrd,
		"-append", strings.Join(cmdline, " "),
	)
	if v.arch.debugExit {
		args = append(args, "-device", debugExitPort)
	}
	return args
}

// boot runs the VM to its end or its timeout, following the console.
func (v vm) boot(ctx context.Context) (*vmResult, error) {
	logf, err := os.Create(v.log)
	if err != nil {
		return nil, fmt.Errorf("creating console log: %w", err)
	}
	defer logf.Close()

	ctx, cancel := context.WithTimeout(ctx, v.timeout)
	defer cancel()
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("creating console pipe: %w", err)
	}
	defer pr.Close()
	cmd := exec.CommandContext(ctx, v.arch.qemu, v.args()...)
	cmd.Stdout, cmd.Stderr = pw, pw
	// Without it a guest that grabbed the pipe could keep Wait waiting.
	cmd.WaitDelay = 5 * time.Second
	fmt.Fprintf(logf, "# %s %s\n", v.arch.qemu, strings.Join(v.args(), " "))

	start := time.Now()
	err = cmd.Start()
	pw.Close()
	if err != nil {
		return nil, fmt.Errorf("starting qemu: %w", err)
	}
	r := &vmResult{qemuExit: -1, status: -1, done: -1}
	consoleDone := make(chan error, 1)
	go func() { consoleDone <- r.follow(pr, logf, start) }()

	waitErr := cmd.Wait()
	end := time.Since(start)
	if cerr := <-consoleDone; cerr != nil {
		return nil, cerr
	}
	if r.boot > 0 {
		r.run = end - r.boot
	}
	r.timedOut = errors.Is(ctx.Err(), context.DeadlineExceeded)
	r.qemuExit = cmd.ProcessState.ExitCode()
	switch {
	case v.arch.debugExit && r.qemuExit > 0 && r.qemuExit%2 == 1:
		r.status = (r.qemuExit - 1) / 2
	case !v.arch.debugExit && r.qemuExit == 0:
		// /init's power-off after its done line: the console's verdict
		// is the only one.
		r.status = r.done
	}
	if waitErr != nil && !r.timedOut && r.qemuExit < 0 {
		return r, fmt.Errorf("qemu: %w", waitErr)
	}
	return r, nil
}

const marker = "stallmon-vm: "

// follow copies the console to the log and parses /init's marker lines as
// they come, so that boot time is measured when /init speaks.
func (r *vmResult) follow(console io.Reader, log io.Writer, start time.Time) error {
	sc := bufio.NewScanner(console)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	var cur *packageRun
	var curStart time.Duration
	for sc.Scan() {
		at := time.Since(start)
		line := strings.TrimRight(sc.Text(), "\r")
		if _, err := fmt.Fprintf(log, "%8.3f %s\n", at.Seconds(), line); err != nil {
			return fmt.Errorf("writing console log: %w", err)
		}
		r.lines = append(r.lines, line)
		r.times = append(r.times, at)
		i := strings.Index(line, marker)
		if i < 0 {
			if cur != nil {
				cur.output = append(cur.output, line)
			}
			continue
		}
		verb, rest, _ := strings.Cut(line[i+len(marker):], " ")
		fields := parseFields(rest)
		switch verb {
		case "boot":
			r.boot = at
			r.kernel = fields["kernel"]
		case "insmod":
			if !strings.HasSuffix(rest, " ok") {
				r.insmodErr = append(r.insmodErr, rest)
			}
		case "run":
			cur = &packageRun{name: rest, rc: -1}
			curStart = at
			r.packages = append(r.packages, cur)
		case "exit":
			if cur != nil {
				cur.rc = atoiOr(fields["rc"], -1)
				cur.duration = at - curStart
				cur = nil
			}
		case "done":
			r.done = atoiOr(fields["status"], -1)
		}
	}
	if err := sc.Err(); err != nil && !errors.Is(err, os.ErrClosed) {
		return fmt.Errorf("reading console: %w", err)
	}
	return nil
}

// parseFields reads the key=value words of a marker line.
func parseFields(s string) map[string]string {
	m := map[string]string{}
	for _, w := range strings.Fields(s) {
		if k, v, ok := strings.Cut(w, "="); ok {
			m[k] = v
		}
	}
	return m
}

func atoiOr(s string, def int) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		return def
	}
	return n
}

// ok reports whether the guest ran everything and said so both ways.
func (r *vmResult) ok() bool {
	return !r.timedOut && r.status == 0 && r.done == 0 && len(r.insmodErr) == 0
}

// verdict explains a boot in one line.
func (r *vmResult) verdict() string {
	switch {
	case r.timedOut:
		return "timed out"
	case r.boot == 0:
		return fmt.Sprintf("never reached /init (qemu exit %d)", r.qemuExit)
	case r.wantReset && r.done < 0 && r.qemuExit == 0:
		return "reset, as the scenario means it to"
	case r.wantReset:
		return fmt.Sprintf("not reset (qemu exit %d, guest status %d)", r.qemuExit, r.status)
	case r.done < 0:
		return fmt.Sprintf("guest stopped before /init finished (qemu exit %d: a panic or a crashed /init)", r.qemuExit)
	case r.status < 0:
		return fmt.Sprintf("no status through isa-debug-exit (qemu exit %d), console said %d", r.qemuExit, r.done)
	case r.status != r.done:
		return fmt.Sprintf("isa-debug-exit said %d, console said %d", r.status, r.done)
	case len(r.insmodErr) > 0:
		return fmt.Sprintf("insmod failed: %s", strings.Join(r.insmodErr, "; "))
	case r.status != 0:
		return fmt.Sprintf("test binaries failed: %d", r.status)
	}
	return "ok"
}

// tail returns the last n lines of text.
func tail(lines []string, n int) string {
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	var b bytes.Buffer
	for _, l := range lines {
		b.WriteString(l)
		b.WriteByte('\n')
	}
	return b.String()
}

// kvmUsable reports whether hardware virtualization is there: /dev/kvm
// alone is not enough where it is nested without vmx/svm, and stock
// kernels then do not boot.
func kvmUsable() bool {
	if _, err := os.Stat("/dev/kvm"); err != nil {
		return false
	}
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return false
	}
	for line := range strings.Lines(string(b)) {
		if flags, ok := strings.CutPrefix(line, "flags"); ok {
			for _, f := range strings.Fields(flags) {
				if f == "vmx" || f == "svm" {
					return true
				}
			}
		}
	}
	return false
}
