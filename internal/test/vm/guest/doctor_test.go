package guest

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stallmon/stallmon/internal/doctor"
)

// On 5.10, stallmon doctor exits 1 naming what is missing, and each probe
// finds what that kernel has and has not: the probes are right on a real
// old kernel, not only on the host's, where everything is there.
func TestDoctorOnOldKernel(t *testing.T) {
	requireScenario(t, "old-kernel")
	bin := os.Getenv("STALLMON_BIN")
	if bin == "" {
		t.Fatal("STALLMON_BIN is not set: the VM's /init sets it when the initramfs has /bin/stallmon")
	}
	release := kernelRelease(t)
	if !strings.HasPrefix(release, "5.10.") {
		t.Fatalf("this boot's kernel is %s; the verdicts below are 5.10's", release)
	}
	// What Linux 5.10 has (true) and has not (false), by feature.
	want := map[string]bool{
		"BPF raw tracepoint programs":                                 true,
		"kernel BTF (CONFIG_DEBUG_INFO_BTF)":                          true,
		"BPF task iterators":                                          true,
		"bpf_probe_read_kernel in tracing programs (not locked down)": true,
		"bpf_get_task_stack in task iterators":                        true,
		"pidfd_open with PIDFD_NONBLOCK":                              true,
		"bpf_get_current_task_btf in tracing programs":                false,
		"BPF task storage maps":                                       false,
		"BPF atomic operations in the JIT":                            false,
		"BPF task storage in tracing programs":                        false,
		"bpf_get_current_ancestor_cgroup_id in tracing programs":      false,
		"bpf_task_pt_regs":                                            false,
		"memcg accounting of BPF memory":                              false,
		"task iterators limited to one process":                       false,
		"cgroup.kill":                                                 false,
		"cgroup.freeze":                                               true,
	}

	// 5.10 lacks only what the minimal object replaces.
	out, code := runDoctor(t, bin)
	if code != 0 {
		t.Errorf("stallmon doctor on Linux %s exited %d, want 0; output:\n%s", release, code, out)
	}
	if err := inOrder(out, []string{"BPF task storage in tracing programs", "missing, fallback: minimal BPF object",
		"would load:", "the minimal BPF object, tracepoint tracker only", "stallmon can run here"}); err != nil {
		t.Errorf("stallmon doctor on Linux %s: %v; output:\n%s", release, err, out)
	}

	js, code := runDoctor(t, bin, "--json")
	if code != 0 {
		t.Errorf("stallmon doctor --json exited %d, want 0", code)
	}
	var r doctor.Report
	if err := json.Unmarshal([]byte(js), &r); err != nil {
		t.Fatalf("stallmon doctor --json: %v; output:\n%s", err, js)
	}
	if !r.CanRun || !r.BTF || r.Kernel != release {
		t.Errorf("report says can_run=%v vmlinux_btf=%v kernel=%q, want true, true, %q", r.CanRun, r.BTF, r.Kernel, release)
	}
	seen := map[string]bool{}
	for _, f := range r.Features {
		seen[f.Name] = true
		w, ok := want[f.Name]
		switch {
		case !ok:
			t.Errorf("doctor probes %q, which this test has no 5.10 verdict for", f.Name)
		case f.Error != "":
			t.Errorf("%s: the probe could not tell: %s", f.Name, f.Error)
		case f.Present != w:
			t.Errorf("%s (Linux %s+): present=%v on %s, want %v", f.Name, f.Kernel, f.Present, release, w)
		}
	}
	for name := range want {
		if !seen[name] {
			t.Errorf("doctor did not report %q", name)
		}
	}
	first, _, _ := strings.Cut(r.Refusal, ";")
	t.Logf(ResultPrefix+"doctor: Linux %s: exit %d: %q", release, code, first)
}

// runDoctor runs stallmon doctor with args and returns its output and
// exit status.
func runDoctor(t *testing.T, bin string, args ...string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	var stdout, stderr strings.Builder
	cmd := exec.CommandContext(ctx, bin, append([]string{"doctor"}, args...)...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("running stallmon doctor: %v", err)
	}
	if len(args) > 0 {
		return stdout.String(), cmd.ProcessState.ExitCode()
	}
	return stdout.String() + stderr.String(), cmd.ProcessState.ExitCode()
}
