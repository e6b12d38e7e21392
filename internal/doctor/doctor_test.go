package doctor

import (
	"bytes"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/stallmon/stallmon/internal/tracker"
	"golang.org/x/sys/unix"
)

// What doctor prints says where BTF came from, whether stallmon can
// signal, and calls a probe that could not tell unknown, never present.
func TestWriteTextSaysWhatItKnows(t *testing.T) {
	r := Report{Kernel: "5.10.0-30-amd64", Arch: "amd64", BTFSource: "/boot/vmlinux-5.10.0-30-amd64", CanRun: true,
		Features: []Feature{
			{Name: "cgroup.kill", Kernel: "5.14", Fallback: "freeze", Error: "reading /sys/fs/cgroup: permission denied"},
			{Name: "BPF task iterators", Kernel: "5.8", Required: true, Present: true},
		}}
	var out bytes.Buffer
	if err := WriteText(&out, r); err != nil {
		t.Fatal(err)
	}
	text := out.String()
	for _, want := range []string{
		"/sys/kernel/btf/vmlinux  missing",
		"kernel BTF read from     /boot/vmlinux-5.10.0-30-amd64 (a file, not the running kernel's own)",
		"CAP_KILL                 missing: can signal only processes of its own user",
		"unknown: reading /sys/fs/cgroup: permission denied",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("doctor does not say %q:\n%s", want, text)
		}
	}
	for line := range strings.Lines(text) {
		if strings.HasPrefix(line, "cgroup.kill") && strings.Contains(line, "present") {
			t.Errorf("a probe that could not tell reads as present: %q", line)
		}
	}
}

// hasCap reads the effective set the kernel reports in /proc/self/status.
func TestHasCapMatchesProcStatus(t *testing.T) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	var eff uint64
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "CapEff:"); ok {
			if eff, err = strconv.ParseUint(strings.TrimSpace(v), 16, 64); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, c := range []int{unix.CAP_KILL, unix.CAP_SYS_ADMIN, unix.CAP_BPF, unix.CAP_CHECKPOINT_RESTORE} {
		got, err := hasCap(c)
		if err != nil {
			t.Fatal(err)
		}
		if want := eff&(1<<c) != 0; got != want {
			t.Errorf("hasCap(%d) = %v, CapEff %#x says %v", c, got, eff, want)
		}
	}
}

// doctor promises the freeze fallback only where cgroup.freeze is (or
// may be) there, and says when a cgroup cannot be killed at all.
func TestKillVariantFollowsTheProbes(t *testing.T) {
	const kill, freeze = tracker.FeatureCgroupKill, tracker.FeatureCgroupFreeze
	for _, c := range []struct {
		has, unknown []string
		want, not    string
	}{
		{has: []string{kill, freeze}, want: "through cgroup.kill", not: "freezing"},
		{unknown: []string{kill}, has: []string{freeze}, want: "through cgroup.kill if the kill finds it, else by freezing"},
		{has: []string{freeze}, want: "by freezing the cgroup and killing each member through a pidfd (no cgroup.kill)", not: "unkillable"},
		{unknown: []string{freeze}, want: "if the kill finds cgroup.freeze", not: "through cgroup.kill"},
		{want: "cannot be killed (neither cgroup.kill nor cgroup.freeze)", not: "by freezing"},
	} {
		has, unknown := map[string]bool{}, map[string]bool{}
		for _, n := range c.has {
			has[n] = true
		}
		for _, n := range c.unknown {
			unknown[n] = true
		}
		got := killVariant(has, unknown)
		if !strings.Contains(got, c.want) || (c.not != "" && strings.Contains(got, c.not)) {
			t.Errorf("has %v, unknown %v: %q, want %q and not %q", c.has, c.unknown, got, c.want, c.not)
		}
	}
}
