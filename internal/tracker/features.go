package tracker

import (
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/features"
)

// ErrMissingFeature reports a kernel without something the tracker needs
// and has no fallback for.
var ErrMissingFeature = errors.New("kernel feature missing")

// A Feature is one thing the tracker's BPF object or its kills need from
// the running kernel. The kernel release is what the refusal and
// stallmon doctor print; whether the feature is there is always probed,
// never read from uname: distribution kernels (RHEL 9's 5.14) carry BPF
// from much later releases.
type Feature struct {
	// Name says what is needed, as in "stallmon needs NAME".
	Name string
	// Kernel is the first mainline release that has it.
	Kernel string
	// UsedBy says what in stallmon needs it.
	UsedBy string
	// Fallback is what stallmon does without it; empty when the tracker
	// cannot load without it.
	Fallback string
	// Minimal says the fallback is the minimal BPF object, which the
	// tracker loads when the full one fails to and every feature it
	// misses is one of these (--bpf-features=probe).
	Minimal bool
	probe   probe
}

// A probe returns nil when its feature is there, an error wrapping
// ebpf.ErrNotSupported when it is not, and any other error when it cannot
// tell. The kernel's BTF, decoded once, is shared by a round of probes.
type probe func(*btf.Cache) error

// Required reports whether the tracker cannot load without f.
func (f Feature) Required() bool { return f.Fallback == "" }

// A Probe is the verdict on one Feature on the running kernel.
type Probe struct {
	Feature
	Present bool
	// Err is why the probe could not tell; Present is false then.
	Err error
}

// The features that have fallbacks, by name.
const (
	FeatureIterFilter = "task iterators limited to one process"
	FeatureCgroupKill = "cgroup.kill"
	// FeatureCgroupFreeze is what a cgroup is killed with when
	// cgroup.kill is missing.
	FeatureCgroupFreeze = "cgroup.freeze"
	FeatureMemcg        = "memcg accounting of BPF memory"
	// FeaturePidfdNonblock is how the target is held: 5.9 has every BPF
	// feature the minimal object needs, and lacks only this.
	FeaturePidfdNonblock = "pidfd_open with PIDFD_NONBLOCK"
	// FeatureProbeRead is absent on a kernel locked down for
	// confidentiality, which takes the helpers from tracing programs.
	FeatureProbeRead = "bpf_probe_read_kernel in tracing programs (not locked down)"
)

// Features lists what the tracker needs, oldest kernel first, then what
// it can do without.
func Features() []Feature {
	return []Feature{
		{Name: "BPF raw tracepoint programs", Kernel: "4.17",
			UsedBy: "sys_enter/sys_exit, thread exit, fork and cgroup-move programs",
			probe:  func(*btf.Cache) error { return features.HaveProgramType(ebpf.RawTracepoint) }},
		{Name: "kernel BTF (CONFIG_DEBUG_INFO_BTF)", Kernel: "5.4",
			UsedBy: "CO-RE reads of kernel structures; task iterators", probe: probeKernelBTF},
		{Name: "BPF task iterators", Kernel: "5.8",
			UsedBy: "the snapshot program that reads every watched thread each poll", probe: probeTaskIter},
		{Name: FeatureProbeRead, Kernel: "5.5",
			UsedBy: "reads of kernel memory the CO-RE accessors reach (fd kinds, death records, comm)",
			probe: all(rawTPHelpers(asm.FnProbeReadKernel, asm.FnProbeReadKernelStr),
				iterHelper(asm.FnProbeReadKernel), iterHelper(asm.FnProbeReadKernelStr))},
		{Name: "bpf_get_task_stack in task iterators", Kernel: "5.9",
			UsedBy: "the wait site of a sleeping thread", probe: iterHelper(asm.FnGetTaskStack)},
		{Name: FeaturePidfdNonblock, Kernel: "5.10",
			UsedBy: "holding and signalling a --pid or --tree target through a pidfd, never a bare PID", probe: probePidfdNonblock},
		{Name: "bpf_get_current_task_btf in tracing programs", Kernel: "5.11",
			UsedBy: "the syscall programs' reads of the current task",
			probe:  rawTPHelpers(asm.FnGetCurrentTaskBtf), Minimal: true,
			Fallback: "minimal BPF object: bpf_get_current_task and a probe read per field"},
		{Name: "BPF task storage maps", Kernel: "5.11",
			UsedBy: "the in-flight syscall record of each thread",
			probe:  func(*btf.Cache) error { return features.HaveMapType(ebpf.TaskStorage) }, Minimal: true,
			Fallback: "minimal BPF object: a preallocated hash keyed by tid (32,768 threads), deleted at thread exit"},
		{Name: "BPF atomic operations in the JIT", Kernel: atomicsKernel(),
			UsedBy: "thread exit counters, tree and cgroup membership bits", probe: probeAtomics, Minimal: true,
			Fallback: "minimal BPF object: a byte per tree or cgroup member, plain atomic adds only"},
		{Name: "BPF task storage in tracing programs", Kernel: "5.13",
			UsedBy: "the in-flight syscall record of each thread",
			probe: all(rawTPHelpers(asm.FnTaskStorageGet, asm.FnTaskStorageDelete),
				iterHelper(asm.FnTaskStorageGet)), Minimal: true,
			Fallback: "minimal BPF object: a preallocated hash keyed by tid (32,768 threads), deleted at thread exit"},
		{Name: "bpf_get_current_ancestor_cgroup_id in tracing programs", Kernel: "5.14",
			UsedBy: "the syscall programs' cgroup filter (--cgroup, run)",
			probe:  rawTPHelpers(asm.FnGetCurrentAncestorCgroupId), Minimal: true,
			Fallback: "minimal BPF object: the ancestor's id read through the task's cgroup"},
		{Name: "bpf_task_pt_regs", Kernel: "5.15",
			UsedBy: "the saved registers that say which syscall a sleeping thread is in",
			probe:  all(rawTPHelpers(asm.FnTaskPtRegs), iterHelper(asm.FnTaskPtRegs)), Minimal: true,
			Fallback: "minimal BPF object: the task's stack plus an offset measured at a sys_enter (not with --tracker=sampled)"},
		{Name: FeatureMemcg, Kernel: "5.11",
			UsedBy: "loading maps and programs whatever RLIMIT_MEMLOCK is", probe: func(*btf.Cache) error { return probeMemcgAccounting() },
			Fallback: "RLIMIT_MEMLOCK is raised to unlimited before loading (needs CAP_SYS_RESOURCE)"},
		{Name: FeatureIterFilter, Kernel: "6.1",
			UsedBy: "the snapshot of a --pid or --tree target", probe: probeIterFilterAlone,
			Fallback: "each poll walks every task of the host"},
		{Name: FeatureCgroupFreeze, Kernel: "5.2",
			UsedBy: "killing a cgroup without cgroup.kill (--cgroup, run, before Linux 5.14)", probe: probeCgroupFreeze,
			Fallback: "none: without cgroup.kill either, a cgroup's kill fails and is judged as an unkillable target"},
		{Name: FeatureCgroupKill, Kernel: "5.14",
			UsedBy: "killing a whole cgroup at once (--cgroup, run)", probe: probeCgroupKill,
			Fallback: "the cgroup is frozen (cgroup.freeze, 5.2), each member sent SIGKILL through a pidfd, and thawed once none is left unsignalled"},
	}
}

// atomicsKernel is where the verifier (x86) or the arm64 JIT learnt the
// atomic instructions the object uses: arm64 5.15-5.17 verify such a
// program and then fail to JIT it.
func atomicsKernel() string {
	if runtime.GOARCH == "arm64" {
		return "5.18"
	}
	return "5.12"
}

// ProbeKernel probes every feature of fs on the running kernel. Nothing
// it loads outlives it.
func ProbeKernel(fs []Feature) []Probe {
	ps := make([]Probe, 0, len(fs))
	c := btf.NewCache()
	for _, f := range fs {
		err := f.probe(c)
		p := Probe{Feature: f, Present: err == nil}
		if err != nil && !errors.Is(err, ebpf.ErrNotSupported) {
			p.Err = err
		}
		ps = append(ps, p)
	}
	return ps
}

// Refusal is why the tracker cannot load with the probes' verdicts: every
// required feature that is missing, named with the kernel that brought
// it; else, failing closed, the first probe that could not tell. Nil when
// it can load.
func Refusal(ps []Probe) error {
	var missing []string
	var doubt error
	for _, p := range ps {
		switch {
		case !p.Required() || p.Present:
		case p.Err != nil:
			if doubt == nil {
				doubt = fmt.Errorf("probing the kernel for %s: %w", p.Name, p.Err)
			}
		default:
			missing = append(missing, fmt.Sprintf("%s (Linux %s+)", p.Name, p.Kernel))
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("stallmon needs %s; this kernel has not: %w", strings.Join(missing, ", "), ErrMissingFeature)
	}
	return doubt
}

// featuresFound is set once the running kernel passed checkFeatures:
// what it offers does not change while stallmon runs, and each later
// attach (a restart, a test) is spared the probes' loads. A refusal or a
// doubt is not kept: the next attach probes again.
var featuresFound atomic.Bool

// checkFeatures refuses a kernel that lacks something the tracker cannot
// do without.
// explainLoadFailure turns a failure to load or attach the object into a
// refusal naming the features the kernel lacks, when the probes find any;
// else the failure stands as it is.
func explainLoadFailure(err error) error {
	if ferr := checkFeatures(); ferr != nil {
		return ferr
	}
	return err
}

func checkFeatures() error {
	if featuresFound.Load() {
		return nil
	}
	required := slices.DeleteFunc(Features(), func(f Feature) bool { return !f.Required() })
	err := Refusal(ProbeKernel(required))
	if err == nil {
		featuresFound.Store(true)
	}
	return err
}
