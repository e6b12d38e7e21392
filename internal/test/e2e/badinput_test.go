package e2e

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stallmon/stallmon/internal/cgroup"
	"github.com/stallmon/stallmon/internal/testutil/cgrouptest"
	"github.com/stallmon/stallmon/internal/testutil/nettest"
	"github.com/stallmon/stallmon/internal/testutil/privtest"
)

// badInputPage lists every bad input stallmon refuses, with its error.
const badInputPage = "docs/badinput.md"

// badInputRow is one row of the table in docs/badinput.md.
type badInputRow struct {
	what, command, stderr string
	code                  int
}

// docsBadInput returns the setup script and the rows of docs/badinput.md.
func docsBadInput(t *testing.T) (string, []badInputRow) {
	t.Helper()
	section := docPage(t, badInputPage)
	setup := regexp.MustCompile("(?s)```sh\n(.*?)```").FindStringSubmatch(section)
	if setup == nil {
		t.Fatal(badInputPage + " has no sh block to prepare its files")
	}
	code := func(cell string) string { return strings.TrimSuffix(strings.TrimPrefix(cell, "`"), "`") }
	var rows []badInputRow
	for line := range strings.Lines(section) {
		line = strings.TrimSpace(line)
		if !strings.HasPrefix(line, "| ") || strings.HasPrefix(line, "| bad input |") {
			continue
		}
		cells := strings.Split(strings.TrimSuffix(strings.TrimPrefix(line, "| "), " |"), " | ")
		if len(cells) != 4 {
			t.Fatalf("%s row %q has %d cells, want 4", badInputPage, line, len(cells))
		}
		exit, err := strconv.Atoi(cells[3])
		if err != nil {
			t.Fatalf("%s row %q: exit status %q", badInputPage, line, cells[3])
		}
		rows = append(rows, badInputRow{what: cells[0], command: code(cells[1]), stderr: code(cells[2]), code: exit})
	}
	return setup[1], rows
}

// tracedRun runs command with sh under strace, in cg so that whatever it
// leaves running is killed with it, and returns its exit status, its
// stderr and what strace saw it do: every successful bpf() call and every
// successful send on a socket other than netlink (how an interface is
// looked up).
func tracedRun(t *testing.T, cg cgroup.Dir, dir string, env []string, command string) (int, string, []string) {
	t.Helper()
	trace := filepath.Join(t.TempDir(), "strace")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	fd, err := os.Open(cg.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer fd.Close()
	cmd := exec.CommandContext(ctx, "strace", "-f", "-qq", "--successful-only", "-yy",
		"-e", "trace=bpf,sendto,sendmsg,sendmmsg", "-o", trace, "sh", "-c", command)
	cmd.Dir, cmd.Env = dir, env
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: int(fd.Fd())}
	// strace detaches its tracees when it is killed: the cgroup ends them all.
	cmd.Cancel = cg.Kill
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err = cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("running %q under strace: %v", command, err)
	}
	if ctx.Err() != nil {
		t.Fatalf("%q still running after 30s: %s", command, stderr.String())
	}
	return cmd.ProcessState.ExitCode(), stderr.String(), tracedEffects(t, trace)
}

// tracedEffects reads an strace -f --successful-only -yy log, pairing
// the halves of calls it split between threads.
func tracedEffects(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	unfinished := map[string]string{}
	var out []string
	for line := range strings.Lines(string(b)) {
		line = strings.TrimSpace(line)
		pid, call, _ := strings.Cut(line, " ")
		call = strings.TrimSpace(call) // strace pads the pid
		if head, ok := strings.CutSuffix(call, " <unfinished ...>"); ok {
			unfinished[pid] = head
			continue
		}
		if m := regexp.MustCompile(`^<\.\.\. \w+ resumed>`).FindString(call); m != "" {
			call = unfinished[pid] + strings.TrimPrefix(call, m)
			delete(unfinished, pid)
		}
		switch {
		case strings.HasPrefix(call, "bpf("):
			out = append(out, call)
		case strings.HasPrefix(call, "send") && !regexp.MustCompile(`^send\w*\(\d+<NETLINK:`).MatchString(call):
			out = append(out, call)
		}
	}
	return out
}

// Every row of the table in docs/badinput.md is run as written: the real
// stderr line and exit status must be the row's, so the table cannot
// drift from the code, and strace must see the run make no bpf() call
// and send no packet: the input was refused before anything was loaded.
func TestDocsBadInput(t *testing.T) {
	privtest.Require(t)
	privtest.RequireCommand(t, "strace")
	privtest.RequireCommand(t, "setpriv")
	setup, rows := docsBadInput(t)
	if len(rows) < 20 {
		t.Fatalf("read %d rows from the table in %s, want 20 or more", len(rows), badInputPage)
	}
	dir := t.TempDir()
	// Rows run as nobody read files here too.
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	prepare := exec.Command("sh", "-e", "-c", setup)
	prepare.Dir = dir
	if out, err := prepare.CombinedOutput(); err != nil {
		t.Fatalf("the setup in %s: %v: %s", badInputPage, err, out)
	}
	live := exec.Command("sleep", "1000")
	if err := live.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { live.Process.Kill(); live.Wait() })
	zombie := exec.Command("true")
	if err := zombie.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { zombie.Wait() })
	waitZombie(t, zombie.Process.Pid)
	pid, zpid := strconv.Itoa(live.Process.Pid), strconv.Itoa(zombie.Process.Pid)
	env := append(os.Environ(), "PATH="+filepath.Dir(stallmonBin)+":"+os.Getenv("PATH"), "PID="+pid, "ZOMBIE="+zpid)
	cg := cgrouptest.New(t)
	for i, row := range rows {
		t.Run(strconv.Itoa(i)+" "+row.what, func(t *testing.T) {
			code, stderr, effects := tracedRun(t, cg, dir, env, row.command)
			want := regexp.QuoteMeta(row.stderr)
			want = strings.NewReplacer(`\$ZOMBIE`, zpid, `\$PID`, pid, `\$\$`, `[0-9]+`).Replace(want)
			if code != row.code || !regexp.MustCompile(`^`+want+`\n$`).MatchString(stderr) {
				t.Errorf("%s\nexit %d, stderr %q\nwant exit %d, stderr %q", row.command, code, stderr, row.code, row.stderr+"\n")
			}
			if len(effects) > 0 {
				t.Errorf("%s: refused, yet it made %d bpf() calls or sends, first %.160s", row.command, len(effects), effects[0])
			}
		})
	}
	if procs, err := cg.Procs(); err != nil || len(procs) != 0 {
		t.Errorf("processes %v (%v) left running by the rows", procs, err)
	}
}

// The trace TestDocsBadInput relies on does see an attach and a
// heartbeat: a command line that is accepted loads, attaches and sends.
func TestBadInputTraceSeesAnAttach(t *testing.T) {
	privtest.Require(t)
	privtest.RequireCommand(t, "strace")
	target := startWorkload(t)
	group := nettest.LoopbackGroup(t).String()
	cg := cgrouptest.New(t)
	// The agent ends when its target does: the target exits once the
	// agent says it is attached (else the run times out, and fails).
	events := filepath.Join(t.TempDir(), "events")
	go func() {
		for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			if b, _ := os.ReadFile(events); bytes.Contains(b, []byte(`"msg":"attached"`)) {
				target.Send("exit 0")
				return
			}
		}
	}()
	code, stderr, effects := tracedRun(t, cg, t.TempDir(), os.Environ(),
		stallmonBin+" attach --pid "+itoa(target.PID)+" --interface lo --ttl 0 --group "+group+
			" --interval 100ms --metrics-addr '' --log-format json > "+events)
	if code != exitOK {
		t.Fatalf("attach exited %d: %s", code, stderr)
	}
	seen := strings.Join(effects, "\n")
	for _, want := range []string{"bpf(BPF_PROG_LOAD", "bpf(BPF_RAW_TRACEPOINT_OPEN", "<UDP:"} {
		if !strings.Contains(seen, want) {
			t.Errorf("the trace of a real attach has no %q; it saw:\n%s", want, seen)
		}
	}
}
