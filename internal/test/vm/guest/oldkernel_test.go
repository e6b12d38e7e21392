package guest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/stallmon/stallmon/heartbeat"
	"github.com/stallmon/stallmon/internal/testutil/harness"
)

// Before 5.15 no kernel has bpf_task_pt_regs, which the sampled tracker
// cannot do without (the tracepoint tracker falls back to the minimal
// object); attach names what is missing, as the probes found it, never a
// version.
const minMajor, minMinor = 5, 15

// refusals are what attach --tracker=sampled must name on 5.10, in this
// order.
var refusals = []string{"the sampled tracker", "needs bpf_task_pt_regs", "missing here: ", "bpf_task_pt_regs"}

// On a kernel older than stallmon supports, attach fails at once with exit
// status 1 and says why, instead of half attaching: no BPF program or map
// of it outlives it, no heartbeat claims the node alive, and the target
// goes on untouched. It runs in the boot make vmtest gives such a kernel
// (vmtest_scenario=old-kernel); elsewhere it skips.
func TestOldKernelIsRefused(t *testing.T) {
	requireScenario(t, "old-kernel")
	bin := os.Getenv("STALLMON_BIN")
	if bin == "" {
		t.Fatal("STALLMON_BIN is not set: the VM's /init sets it when the initramfs has /bin/stallmon")
	}
	release := kernelRelease(t)
	if !olderThan(t, release, minMajor, minMinor) {
		t.Fatalf("this boot's kernel %s is not older than %d.%d: the scenario would prove nothing", release, minMajor, minMinor)
	}
	progsBefore, mapsBefore := bpfIDs(t)
	c := startChild(t, "idle")
	cluster := harness.NewCluster(t)

	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append([]string{"attach", "--tracker", "sampled", "--pid", strconv.Itoa(c.pid), "--log-format", "json",
		"--node-id", "vm", "--metrics-addr", ""}, cluster.GroupFlags()...)...)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	took := time.Since(start)
	out := stderr.String() + stdout.String()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("running stallmon attach: %v", err)
	}
	// Errorf, not Fatalf: what the failed attach left behind is worth
	// knowing whatever it said.
	if code := cmd.ProcessState.ExitCode(); code != 1 {
		t.Errorf("stallmon attach on Linux %s exited %d after %v (%v), want 1; output:\n%s", release, code, took, err, out)
	}
	if err := inOrder(out, refusals); err != nil {
		t.Errorf("stallmon attach on Linux %s: %v; output:\n%s", release, err, out)
	}
	if strings.Contains(out, "or later") {
		t.Errorf("stallmon attach on Linux %s refused by version, not by feature; output:\n%s", release, out)
	}

	// Program and map IDs are freed when the last reference goes; a prog
	// array lets its programs go from a workqueue after stallmon's exit,
	// and nothing signals that: poll, with a deadline.
	var leakedProgs, leakedMaps []uint32
	for deadline := time.Now().Add(5 * time.Second); ; {
		progs, maps := bpfIDs(t)
		leakedProgs = slices.DeleteFunc(progs, func(id uint32) bool { return slices.Contains(progsBefore, id) })
		leakedMaps = slices.DeleteFunc(maps, func(id uint32) bool { return slices.Contains(mapsBefore, id) })
		if len(leakedProgs)+len(leakedMaps) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if len(leakedProgs)+len(leakedMaps) > 0 {
		t.Errorf("BPF programs %v and maps %v are still loaded 5s after the refused attach", leakedProgs, leakedMaps)
	}
	if pins, err := os.ReadDir("/sys/fs/bpf"); err == nil && len(pins) > 0 {
		t.Errorf("/sys/fs/bpf holds %d pins after the refused attach", len(pins))
	}
	for _, p := range cluster.Seen() {
		if p.P.State == heartbeat.StateAlive {
			t.Errorf("a refused attach announced the node alive: %+v", p.P)
			break
		}
	}

	// Untouched: still waiting for its go, then it runs and exits 0.
	if s := readStat(t, c.pid); s.state != 'S' {
		t.Errorf("target in %c after the refused attach, want S (waiting on its stdin)", s.state)
	}
	c.enter(t)
	if line := c.readLine(t); !strings.HasPrefix(line, "took=") {
		t.Fatalf("target said %q after the refused attach, want took=", line)
	}
	c.in.Close()
	if !c.exitedWithin(t, 30*time.Second) {
		t.Fatal("target did not exit within 30s of its stdin closing")
	}
	if err := c.cmd.Wait(); err != nil {
		t.Fatalf("target: %v, want exit 0: the refused attach touched it", err)
	}
	first, _, _ := strings.Cut(strings.TrimSpace(stderr.String()), "\n")
	t.Logf(ResultPrefix+"old-kernel: Linux %s: attach ended in %v, exit %d: %q; target untouched, no BPF left loaded",
		release, took.Round(time.Millisecond), cmd.ProcessState.ExitCode(), first)
}

// inOrder checks that out holds each of want, one after the other.
func inOrder(out string, want []string) error {
	at := 0
	for _, w := range want {
		i := strings.Index(out[at:], w)
		if i < 0 {
			return fmt.Errorf("no %q after offset %d", w, at)
		}
		at += i + len(w)
	}
	return nil
}

func kernelRelease(t *testing.T) string {
	t.Helper()
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		t.Fatalf("uname: %v", err)
	}
	return unix.ByteSliceToString(u.Release[:])
}

// olderThan reports whether release ("5.10.0-46-amd64") is older than
// major.minor.
func olderThan(t *testing.T, release string, major, minor int) bool {
	t.Helper()
	var maj, mnr int
	if _, err := fmt.Sscanf(release, "%d.%d", &maj, &mnr); err != nil {
		t.Fatalf("kernel release %q: %v", release, err)
	}
	return maj < major || maj == major && mnr < minor
}

// bpfIDs lists the IDs of every BPF program and map loaded in the kernel.
func bpfIDs(t *testing.T) (progs, maps []uint32) {
	t.Helper()
	for id := ebpf.ProgramID(0); ; {
		next, err := ebpf.ProgramGetNextID(id)
		if errors.Is(err, os.ErrNotExist) {
			break
		}
		if err != nil {
			t.Fatalf("listing BPF programs: %v", err)
		}
		progs, id = append(progs, uint32(next)), next
	}
	for id := ebpf.MapID(0); ; {
		next, err := ebpf.MapGetNextID(id)
		if errors.Is(err, os.ErrNotExist) {
			break
		}
		if err != nil {
			t.Fatalf("listing BPF maps: %v", err)
		}
		maps, id = append(maps, uint32(next)), next
	}
	return progs, maps
}
