// Package doctor tells whether stallmon can run on this kernel: what the
// tracker needs, what each probe found, and which variant would load.
package doctor

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"runtime"
	"strings"
	"text/tabwriter"

	"golang.org/x/sys/unix"

	"github.com/stallmon/stallmon/internal/tracker"
)

// vmlinuxBTF is where the kernel exposes its own BTF.
const vmlinuxBTF = "/sys/kernel/btf/vmlinux"

// Feature is one probe's verdict as doctor reports it.
type Feature struct {
	Name     string `json:"name"`
	Kernel   string `json:"first_kernel"`
	UsedBy   string `json:"used_by"`
	Required bool   `json:"required"`
	Fallback string `json:"fallback,omitempty"`
	Present  bool   `json:"present"`
	// Error is why the probe could not tell.
	Error string `json:"error,omitempty"`
}

// Report is what doctor found.
type Report struct {
	Kernel string `json:"kernel"`
	Arch   string `json:"arch"`
	// BTF is whether the kernel exposes its own BTF (/sys/kernel/btf/vmlinux).
	BTF bool `json:"vmlinux_btf"`
	// BTFSource is where the loader reads the kernel's types from:
	// /sys/kernel/btf/vmlinux, else a vmlinux file it found on disk (the
	// kernel itself has none then, which task iterators need); empty when
	// there is none.
	BTFSource string `json:"btf_source"`
	// CapKill is whether stallmon holds CAP_KILL in its effective set:
	// without it the pidfd kills reach only processes of its own user
	// (cgroup.kill needs write access to the file instead).
	CapKill  bool      `json:"cap_kill"`
	Features []Feature `json:"features"`
	// Variant names the programs and walks that would load.
	Variant []string `json:"variant"`
	CanRun  bool     `json:"can_run"`
	// Refusal is why stallmon cannot run here.
	Refusal string `json:"refusal,omitempty"`
}

// Check probes the running kernel. Its error is the refusal, or why the
// probes could not run (privileges, PID namespace); the report is filled
// in either way as far as it got.
func Check() (Report, error) {
	var u unix.Utsname
	_ = unix.Uname(&u)
	r := Report{Kernel: unix.ByteSliceToString(u.Release[:]), Arch: runtime.GOARCH}
	_, err := os.Stat(vmlinuxBTF)
	r.BTF = err == nil
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return r, fmt.Errorf("looking for %s: %w", vmlinuxBTF, err)
	}
	if r.BTFSource, err = btfSource(r.BTF, r.Kernel); err != nil {
		return r, err
	}
	if r.CapKill, err = hasCap(unix.CAP_KILL); err != nil {
		return r, err
	}
	if err := tracker.CheckAccess(); err != nil {
		r.Refusal = err.Error()
		return r, err
	}
	// As attach does before probing: where BPF memory is charged to
	// RLIMIT_MEMLOCK, the trial loads need the raise.
	if _, err := tracker.LiftMemlock(); err != nil {
		r.Refusal = err.Error()
		return r, err
	}
	ps := tracker.ProbeKernel(tracker.Features())
	has, unknown := map[string]bool{}, map[string]bool{}
	for _, p := range ps {
		f := Feature{Name: p.Name, Kernel: p.Kernel, UsedBy: p.UsedBy, Required: p.Required(), Fallback: p.Fallback, Present: p.Present}
		if p.Err != nil {
			// Could not tell: never reported present.
			f.Error, f.Present = p.Err.Error(), false
			unknown[p.Name] = true
		}
		r.Features = append(r.Features, f)
		has[p.Name] = f.Present
	}
	refusal := tracker.Refusal(ps)
	if refusal != nil {
		r.Refusal = refusal.Error()
		return r, refusal
	}
	r.CanRun = true
	r.Variant = []string{"tracepoint and sampled trackers (one object: raw tracepoints and a task iterator)"}
	if obj, missing, _ := tracker.ObjectFor(ps, tracker.ProbeFeatures, tracker.Tracepoint); obj == tracker.ObjectMinimal {
		r.Variant = []string{"the minimal BPF object, tracepoint tracker only (this kernel lacks " + strings.Join(missing, ", ") + ")"}
	}
	if has[tracker.FeatureIterFilter] {
		r.Variant = append(r.Variant, "snapshots walk the watched processes only (pid-filtered task iterator)")
	} else {
		r.Variant = append(r.Variant, "snapshots walk every task of the host (no pid-filtered task iterator)")
	}
	if !has[tracker.FeatureMemcg] {
		r.Variant = append(r.Variant, "RLIMIT_MEMLOCK is raised to unlimited before loading (no memcg accounting of BPF memory)")
	}
	r.Variant = append(r.Variant, killVariant(has, unknown))
	if !r.CapKill {
		r.Variant = append(r.Variant, "kills through a pidfd reach only processes of stallmon's own user (no CAP_KILL)")
	}
	return r, nil
}

// killVariant says how a cgroup's service is killed on this kernel,
// from cgroup.kill's and cgroup.freeze's probes: the freeze fallback is
// only promised where cgroup.freeze is (or may be) there.
func killVariant(has, unknown map[string]bool) string {
	const freeze = "freezing the cgroup and killing each member through a pidfd"
	switch {
	case has[tracker.FeatureCgroupKill]:
		return "a cgroup's service is killed through cgroup.kill"
	case unknown[tracker.FeatureCgroupKill]:
		return "a cgroup's service is killed through cgroup.kill if the kill finds it, else by " + freeze
	case has[tracker.FeatureCgroupFreeze]:
		return "a cgroup's service is killed by " + freeze + " (no cgroup.kill)"
	case unknown[tracker.FeatureCgroupFreeze]:
		return "a cgroup's service is killed by " + freeze + " if the kill finds cgroup.freeze (no cgroup.kill), else not at all: the kill fails and is judged as an unkillable target"
	default:
		return "a cgroup's service cannot be killed (neither cgroup.kill nor cgroup.freeze): the kill fails and is judged as an unkillable target"
	}
}

// btfSource says where cilium/ebpf reads the kernel's BTF from: the
// kernel's own, else the first of the vmlinux files it (as libbpf) looks
// for, by kernel release.
func btfSource(own bool, release string) (string, error) {
	if own {
		return vmlinuxBTF, nil
	}
	for _, p := range []string{"/boot/vmlinux-%s", "/lib/modules/%s/vmlinux-%[1]s", "/lib/modules/%s/build/vmlinux",
		"/usr/lib/modules/%s/kernel/vmlinux", "/usr/lib/debug/boot/vmlinux-%s", "/usr/lib/debug/boot/vmlinux-%s.debug",
		"/usr/lib/debug/lib/modules/%s/vmlinux"} {
		path := fmt.Sprintf(p, release)
		_, err := os.Stat(path)
		if err == nil {
			return path, nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return "", fmt.Errorf("looking for the kernel's BTF at %s: %w", path, err)
		}
	}
	return "", nil
}

// hasCap reports whether this process holds capability c in its
// effective set.
func hasCap(c int) (bool, error) {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return false, fmt.Errorf("reading own capabilities: %w", err)
	}
	return data[c/32].Effective&(1<<(c%32)) != 0, nil
}

// WriteText prints r for a person: one line a feature, then the variant
// and the verdict.
func WriteText(w io.Writer, r Report) error {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintf(tw, "kernel\t%s (%s)\n", r.Kernel, r.Arch)
	fmt.Fprintf(tw, "%s\t%s\n", vmlinuxBTF, map[bool]string{true: "present", false: "missing"}[r.BTF])
	switch {
	case r.BTFSource == "":
		fmt.Fprintf(tw, "kernel BTF read from\tnowhere: no BTF found\n")
	case r.BTFSource != vmlinuxBTF:
		fmt.Fprintf(tw, "kernel BTF read from\t%s (a file, not the running kernel's own)\n", r.BTFSource)
	default:
		fmt.Fprintf(tw, "kernel BTF read from\t%s (the running kernel's own)\n", r.BTFSource)
	}
	fmt.Fprintf(tw, "CAP_KILL\t%s\n", map[bool]string{true: "present: can signal any process", false: "missing: can signal only processes of its own user"}[r.CapKill])
	fmt.Fprintln(tw)
	fmt.Fprintln(tw, "FEATURE\tFIRST KERNEL\tFOUND\tNEEDED FOR")
	for _, f := range r.Features {
		found := "present"
		switch {
		case f.Error != "":
			found = "unknown: " + f.Error
		case !f.Present && f.Required:
			found = "MISSING"
		case !f.Present:
			found = "missing, fallback: " + f.Fallback
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", f.Name, f.Kernel, found, f.UsedBy)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if !r.CanRun {
		_, err := fmt.Fprintf(w, "\nstallmon cannot run here: %s\n", r.Refusal)
		return err
	}
	fmt.Fprintln(w, "\nwould load:")
	for _, v := range r.Variant {
		fmt.Fprintf(w, "  %s\n", v)
	}
	_, err := fmt.Fprintln(w, "stallmon can run here")
	return err
}

// WriteJSON prints r as one JSON object.
func WriteJSON(w io.Writer, r Report) error {
	e := json.NewEncoder(w)
	e.SetIndent("", "  ")
	return e.Encode(r)
}
