package tracker

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"errors"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"

	"github.com/stallmon/stallmon/internal/test/vm/guest"
	"github.com/stallmon/stallmon/internal/testutil/privtest"
	"github.com/stallmon/stallmon/internal/tracker/gen"
)

// probesWith gives every feature a verdict: present, but absent for the
// names in absent and doubtful (the probe could not tell) for those in
// doubt.
func probesWith(absent, doubt []string) []Probe {
	var ps []Probe
	for _, f := range Features() {
		p := Probe{Feature: f, Present: true}
		if slices.Contains(absent, f.Name) {
			p.Present = false
		}
		if slices.Contains(doubt, f.Name) {
			p.Present, p.Err = false, errors.New("operation not permitted")
		}
		ps = append(ps, p)
	}
	return ps
}

func TestRefusalNamesWhatIsMissing(t *testing.T) {
	const (
		storage = "BPF task iterators"
		regs    = "bpf_get_task_stack in task iterators"
		filter  = "task iterators limited to one process"
		kill    = "cgroup.kill"
	)
	for _, tc := range []struct {
		name          string
		absent, doubt []string
		want          []string // in this order in the message; nil: no refusal
		missing       bool     // errors.Is ErrMissingFeature
	}{
		{name: "everything there"},
		{name: "only fallbacks missing", absent: []string{filter, kill, "memcg accounting of BPF memory"}},
		{name: "task iterators", absent: []string{storage}, missing: true,
			want: []string{"stallmon needs BPF task iterators (Linux 5.8+)"}},
		{name: "5.7's", absent: []string{regs, storage, filter, "BPF task storage maps"}, missing: true,
			want: []string{"BPF task iterators (Linux 5.8+)", "bpf_get_task_stack in task iterators (Linux 5.9+)"}},
		{name: "5.10's: the minimal object's", absent: []string{"BPF task storage maps", "bpf_task_pt_regs", filter}},
		// 5.9 has every BPF feature the minimal object needs: what
		// refuses it is the pidfd flag the target is opened with.
		{name: "5.9's", absent: []string{FeaturePidfdNonblock, "BPF task storage maps", "bpf_task_pt_regs", filter}, missing: true,
			want: []string{"stallmon needs pidfd_open with PIDFD_NONBLOCK (Linux 5.10+)"}},
		{name: "a doubt fails closed", doubt: []string{regs},
			want: []string{"probing the kernel for bpf_get_task_stack in task iterators: operation not permitted"}},
		{name: "a doubt about a fallback is no refusal", doubt: []string{kill}},
		{name: "missing outranks doubt", absent: []string{storage}, doubt: []string{regs}, missing: true,
			want: []string{"needs BPF task iterators (Linux 5.8+)"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, n := range append(slices.Clone(tc.absent), tc.doubt...) {
				if !slices.ContainsFunc(Features(), func(f Feature) bool { return f.Name == n }) {
					t.Fatalf("no feature is called %q", n)
				}
			}
			err := Refusal(probesWith(tc.absent, tc.doubt))
			if tc.want == nil {
				if err != nil {
					t.Fatalf("Refusal = %v, want none", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Refusal = nil, want %q", tc.want)
			}
			msg, at := err.Error(), 0
			for _, w := range tc.want {
				i := strings.Index(msg[at:], w)
				if i < 0 {
					t.Fatalf("Refusal = %q, want %q after offset %d", msg, w, at)
				}
				at += i + len(w)
			}
			if got := errors.Is(err, ErrMissingFeature); got != tc.missing {
				t.Errorf("errors.Is(%q, ErrMissingFeature) = %v, want %v", msg, got, tc.missing)
			}
			if strings.Contains(msg, "or later") {
				t.Errorf("Refusal = %q: it names a version, not a feature", msg)
			}
		})
	}
}

// Every feature of the table is there on a kernel as new as the host's
// (6.18), each probe answers, and the tracker would load. The first
// probes of a process are timed: later ones are answered from caches.
// In make vmtest's guests, which boot older kernels on purpose (5.10), a
// feature may be absent where it has a fallback, and is listed.
func TestHostHasEveryFeature(t *testing.T) {
	privtest.Require(t)
	featuresFound.Store(false) // an earlier attach of this process would have kept the verdict
	start := time.Now()
	if err := checkFeatures(); err != nil {
		t.Errorf("checkFeatures: %v", err)
	}
	t.Logf("the probes attach runs took %v", time.Since(start).Round(time.Millisecond))
	if !featuresFound.Load() {
		t.Error("checkFeatures passed and did not keep the verdict: every attach would probe again")
	}
	inVM := os.Getenv(guest.InVMEnv) == "1"
	var fallbacks []string
	for _, p := range ProbeKernel(Features()) {
		switch {
		case p.Present:
		case inVM && p.Err == nil && !p.Required():
			fallbacks = append(fallbacks, p.Name)
		default:
			t.Errorf("%s (Linux %s+): not found on this kernel (probe error: %v)", p.Name, p.Kernel, p.Err)
		}
	}
	if len(fallbacks) > 0 {
		t.Logf("absent in this guest, with their fallbacks: %s", strings.Join(fallbacks, ", "))
	}
}

// helperFeatures says which feature's probe answers for each helper the
// object calls, per program type. A helper older than raw tracepoints
// (4.17) or task iterators (5.8) is answered by that program type's own
// probe. A helper the object starts calling fails
// TestFeaturesCoverTheObject until it is probed.
var helperFeatures = map[ebpf.ProgramType]map[asm.BuiltinFunc]string{
	ebpf.RawTracepoint: {
		asm.FnMapLookupElem: "BPF raw tracepoint programs", asm.FnMapUpdateElem: "BPF raw tracepoint programs",
		asm.FnMapDeleteElem: "BPF raw tracepoint programs", asm.FnKtimeGetNs: "BPF raw tracepoint programs",
		asm.FnGetCurrentPidTgid: "BPF raw tracepoint programs",
		asm.FnProbeReadKernel:   FeatureProbeRead, asm.FnProbeReadKernelStr: FeatureProbeRead,
		asm.FnGetCurrentTaskBtf:          "bpf_get_current_task_btf in tracing programs",
		asm.FnTaskStorageGet:             "BPF task storage in tracing programs",
		asm.FnTaskStorageDelete:          "BPF task storage in tracing programs",
		asm.FnGetCurrentAncestorCgroupId: "bpf_get_current_ancestor_cgroup_id in tracing programs",
		asm.FnTaskPtRegs:                 "bpf_task_pt_regs",
	},
	ebpf.Tracing: {
		asm.FnMapLookupElem: "BPF task iterators", asm.FnMapUpdateElem: "BPF task iterators",
		asm.FnKtimeGetNs: "BPF task iterators", asm.FnProbeReadKernel: FeatureProbeRead,
		asm.FnProbeReadKernelStr: FeatureProbeRead, asm.FnSeqWrite: "BPF task iterators",
		asm.FnGetTaskStack:   "bpf_get_task_stack in task iterators",
		asm.FnTaskStorageGet: "BPF task storage in tracing programs",
		asm.FnTaskPtRegs:     "bpf_task_pt_regs",
	},
}

// The probes cover what the object uses: every program type, helper,
// map type and atomic instruction in it.
func TestFeaturesCoverTheObject(t *testing.T) {
	spec, err := gen.LoadStallmon()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, f := range Features() {
		names[f.Name] = true
	}
	probed := map[[5]byte]bool{}
	for _, ins := range atomicOps {
		probed[encoding(t, ins)] = true
	}
	for name, p := range spec.Programs {
		helpers, ok := helperFeatures[p.Type]
		if !ok {
			t.Errorf("program %s is of type %v, which no feature probes", name, p.Type)
			continue
		}
		if p.Type == ebpf.Tracing && (p.AttachType != ebpf.AttachTraceIter || p.AttachTo != "task") {
			t.Errorf("program %s is a tracing program of attach type %v to %q; only task iterators are probed", name, p.AttachType, p.AttachTo)
		}
		for _, ins := range p.Instructions {
			if ins.IsBuiltinCall() {
				fn := asm.BuiltinFunc(ins.Constant)
				if f, ok := helpers[fn]; !ok || !names[f] {
					t.Errorf("program %s (%v) calls %v, which no feature covers (table says %q)", name, p.Type, fn, f)
				}
			}
			if ins.OpCode.AtomicOp() != asm.InvalidAtomic && !probed[encoding(t, ins)] {
				t.Errorf("program %s uses %v, which probeAtomics does not load", name, ins)
			}
		}
	}
	old := []ebpf.MapType{ebpf.Hash, ebpf.Array, ebpf.PerCPUArray, ebpf.LRUHash} // all before 4.17
	for name, m := range spec.Maps {
		if m.Type != ebpf.TaskStorage && !slices.Contains(old, m.Type) {
			t.Errorf("map %s is of type %v, which no feature covers", name, m.Type)
		}
	}
	if !names["BPF task storage maps"] {
		t.Error(`no feature is called "BPF task storage maps"`)
	}
}

// encoding is what the kernel is given of an atomic instruction: its
// opcode and immediate, which together say which operation it is.
func encoding(t *testing.T, ins asm.Instruction) [5]byte {
	t.Helper()
	var b bytes.Buffer
	if _, err := ins.Marshal(&b, binary.LittleEndian); err != nil {
		t.Fatalf("encoding %v: %v", ins, err)
	}
	raw := b.Bytes()
	return [5]byte{raw[0], raw[4], raw[5], raw[6], raw[7]}
}

// The full object loads where the kernel has all it needs, the minimal
// one where it lacks only what the minimal one replaces, or when the
// operator asks; nothing loads where a feature without fallback is
// missing, nor for the sampled tracker where only the minimal one could.
func TestObjectFor(t *testing.T) {
	const (
		regs    = "bpf_task_pt_regs"
		storage = "BPF task storage in tracing programs"
		iter    = "BPF task iterators"
		kill    = "cgroup.kill"
	)
	for _, tc := range []struct {
		name          string
		absent, doubt []string
		choice        BPFFeatures
		kind          Kind
		want          string // "" for a refusal
		missing       []string
	}{
		{name: "6.18", want: ObjectFull},
		{name: "a fallback that is no object's", absent: []string{kill}, want: ObjectFull},
		{name: "5.10", absent: []string{regs, storage}, want: ObjectMinimal, missing: []string{storage, regs}},
		{name: "a doubt loads the minimal one", doubt: []string{regs}, want: ObjectMinimal, missing: []string{regs}},
		{name: "operator's choice", choice: MinimalFeatures, want: ObjectMinimal},
		{name: "no fallback", absent: []string{iter, regs}},
		{name: "sampled on 5.10", absent: []string{regs}, kind: Sampled},
		{name: "sampled, minimal", choice: MinimalFeatures, kind: Sampled},
		{name: "sampled on 6.18", kind: Sampled, want: ObjectFull},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, missing, err := ObjectFor(probesWith(tc.absent, tc.doubt), cmp.Or(tc.choice, ProbeFeatures), tc.kind)
			if got != tc.want || (err == nil) != (tc.want != "") {
				t.Fatalf("ObjectFor = %q, %v; want %q", got, err, tc.want)
			}
			if tc.want != "" && !slices.Equal(missing, tc.missing) {
				t.Errorf("missing = %q, want %q", missing, tc.missing)
			}
			if err != nil && !errors.Is(err, ErrMissingFeature) {
				t.Errorf("refusal %v is no ErrMissingFeature", err)
			}
		})
	}
}
