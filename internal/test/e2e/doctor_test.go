package e2e

import (
	"bytes"
	"encoding/json"
	"os/exec"
	"regexp"
	"strings"
	"testing"

	"github.com/stallmon/stallmon/internal/doctor"
	"github.com/stallmon/stallmon/internal/testutil/privtest"
	"github.com/stallmon/stallmon/internal/tracker"
)

// On this host's kernel (6.18) stallmon doctor finds every feature, names
// each with its first kernel, says what would load, and exits 0.
func TestDoctorOnHost(t *testing.T) {
	privtest.Require(t)
	var out bytes.Buffer
	code, stderr := runStallmon(t, func(c *exec.Cmd) { c.Stdout = &out }, "doctor")
	if code != exitOK {
		t.Fatalf("stallmon doctor exited %d, want 0: %s\n%s", code, stderr, out.String())
	}
	text := out.String()
	for _, f := range tracker.Features() {
		line := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(f.Name) + `\s+` + regexp.QuoteMeta(f.Kernel) + `\s+present\s`)
		if !line.MatchString(text) {
			t.Errorf("stallmon doctor has no line saying %q (Linux %s) is present:\n%s", f.Name, f.Kernel, text)
		}
	}
	for _, want := range []string{"/sys/kernel/btf/vmlinux  present", "kernel BTF read from     /sys/kernel/btf/vmlinux (the running kernel's own)",
		"CAP_KILL                 present", "pid-filtered task iterator", "cgroup.kill\n", "stallmon can run here\n"} {
		if !strings.Contains(text, want) {
			t.Errorf("stallmon doctor does not say %q:\n%s", want, text)
		}
	}

	out.Reset()
	code, stderr = runStallmon(t, func(c *exec.Cmd) { c.Stdout = &out }, "doctor", "--json")
	if code != exitOK {
		t.Fatalf("stallmon doctor --json exited %d, want 0: %s", code, stderr)
	}
	var r doctor.Report
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		t.Fatalf("stallmon doctor --json: %v:\n%s", err, out.String())
	}
	if !r.CanRun || !r.BTF || r.Refusal != "" || len(r.Features) != len(tracker.Features()) {
		t.Errorf("report: can_run=%v vmlinux_btf=%v refusal=%q, %d features; want true, true, none, %d",
			r.CanRun, r.BTF, r.Refusal, len(r.Features), len(tracker.Features()))
	}
	if r.BTFSource != "/sys/kernel/btf/vmlinux" || !r.CapKill {
		t.Errorf("report: btf_source=%q cap_kill=%v; want /sys/kernel/btf/vmlinux, true (root)", r.BTFSource, r.CapKill)
	}
	for _, f := range r.Features {
		if !f.Present || f.Error != "" {
			t.Errorf("%s: present=%v error=%q on this host", f.Name, f.Present, f.Error)
		}
	}
}
