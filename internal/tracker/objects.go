package tracker

import (
	"errors"
	"fmt"
	"strings"
	"sync/atomic"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/stallmon/stallmon/internal/event"
	"github.com/stallmon/stallmon/internal/tracker/gen"
)

// The two BPF objects, as ObjectFor names them.
const (
	ObjectFull    = "full"
	ObjectMinimal = "minimal"
)

// defaultFeatures is the choice of an Options that makes none. Tests
// of the fallbacks set it (STALLMON_TEST_BPF_FEATURES, main_test.go).
var defaultFeatures = ProbeFeatures

// ObjectFor says which object the tracker loads with the probes'
// verdicts and the operator's choice, or why it cannot load, and which
// features the minimal object stands in for.
func ObjectFor(ps []Probe, choice BPFFeatures, kind Kind) (object string, missing []string, err error) {
	if err := Refusal(ps); err != nil {
		return "", nil, err
	}
	for _, p := range ps {
		// A probe that cannot tell counts as missing: the minimal object
		// loads wherever the full one does.
		if p.Minimal && !p.Present {
			missing = append(missing, p.Name)
		}
	}
	if choice != MinimalFeatures && len(missing) == 0 {
		return ObjectFull, nil, nil
	}
	if kind.sampled() {
		return "", missing, fmt.Errorf("the sampled tracker reads every thread's registers without a sys_enter to find them from, "+
			"which needs bpf_task_pt_regs and the full BPF object (missing here: %s): use --tracker=tracepoint: %w",
			strings.Join(cmpOr(missing, "none, but --bpf-features=minimal"), ", "), ErrMissingFeature)
	}
	return ObjectMinimal, missing, nil
}

func cmpOr(s []string, none string) []string {
	if len(s) == 0 {
		return []string{none}
	}
	return s
}

// load loads the object the options and the kernel call for. The full
// one is tried first: its loading is the proof that the kernel has what
// it uses, and the probes, which cost a restart 50-200 ms (enough for a
// restarted stallmon to miss the deadline a gated heartbeat carries
// across), run only when it fails, to pick the minimal object or to name
// what is missing instead of a verifier's log.
func (m *Tracker) load() error {
	choice := m.opts.BPFFeatures
	if choice == "" {
		choice = defaultFeatures
	}
	if choice == MinimalFeatures {
		if _, _, err := ObjectFor(nil, choice, m.opts.Kind); err != nil {
			return err
		}
		if err := m.loadMinimal(); err != nil {
			// Name what the kernel lacks, as a probe-chosen load
			// does, rather than a verifier's log.
			return explainLoadFailure(err)
		}
		m.log.Info(event.BPFMinimalLoaded, "choice", string(choice), "missing", "")
		return nil
	}
	ferr := m.loadFull()
	if ferr == nil {
		return nil
	}
	ps := ProbeKernel(Features())
	object, missing, err := ObjectFor(ps, choice, m.opts.Kind)
	if err != nil {
		return err
	}
	if object == ObjectFull {
		// The kernel has all the full object needs: its failure stands.
		return ferr
	}
	if err := m.loadMinimal(); err != nil {
		return fmt.Errorf("%w (the full object failed too: %w)", err, ferr)
	}
	// The full object's own error is kept: a probe that could not tell
	// counts as missing, and the full object may have failed for
	// another reason than the features the minimal one stands in for.
	m.log.Info(event.BPFMinimalLoaded, "choice", string(choice), "missing", strings.Join(missing, ", "),
		"full_object_err", firstLine(ferr))
	return nil
}

// minimalObjects is the minimal object as the tracker holds it: the full
// one's programs and maps, by the same names, and the global its saved
// registers are found by (bpf/regs.h).
type minimalObjects struct {
	gen.StallmonObjects
	RegsOffset *ebpf.Variable `ebpf:"regs_offset"`
}

// Object names the BPF object the tracker loaded: ObjectFull or
// ObjectMinimal.
func (m *Tracker) Object() string {
	if m.regsOffset != nil {
		return ObjectMinimal
	}
	return ObjectFull
}

// loadFull loads the full object, then its thread walk on the object's
// maps (threads.go).
func (m *Tracker) loadFull() error {
	var objs loadedObjects
	spec, threads, err := m.loadObject(gen.LoadStallmon, bitPerMember, &objs)
	if err != nil {
		return err
	}
	m.objs, m.data = objs.StallmonObjects, objs.dataMaps
	return m.loadThreadWalk(spec, threads)
}

func (m *Tracker) loadMinimal() error {
	var objs minimalObjects
	if _, _, err := m.loadObject(gen.LoadStallmonMinimal, bytePerMember, &objs); err != nil {
		return fmt.Errorf("minimal object: %w", err)
	}
	m.objs, m.regsOffset = objs.StallmonObjects, objs.RegsOffset
	return nil
}

// objectLoads counts the loads of a whole object, which the tests hold
// to one per attach where the full object loads.
var objectLoads atomic.Int64

// loadObject configures and loads an object into to, with a stub in its
// thread walk's place, and returns its spec and the thread walk's
// program (threads.go): the minimal object's kernels have no thread walk.
func (m *Tracker) loadObject(spec func() (*ebpf.CollectionSpec, error), layout memberLayout, to any) (*ebpf.CollectionSpec, *ebpf.ProgramSpec, error) {
	s, err := spec()
	if err != nil {
		return nil, nil, fmt.Errorf("loading tracker spec: %w", err)
	}
	if err := m.scope.configure(s, layout); err != nil {
		return nil, nil, err
	}
	if err := setExitNrs(s); err != nil {
		return nil, nil, err
	}
	if err := setSyscallTables(s); err != nil {
		return nil, nil, err
	}
	if err := m.setQuiet(s); err != nil {
		return nil, nil, err
	}
	if err := m.opts.apply(s); err != nil {
		return nil, nil, err
	}
	threads, err := takeThreadWalk(s)
	if err != nil {
		return nil, nil, err
	}
	objectLoads.Add(1)
	if err := s.LoadAndAssign(to, nil); err != nil {
		var verr *ebpf.VerifierError
		if errors.As(err, &verr) {
			return nil, nil, fmt.Errorf("loading tracker: %+v", verr)
		}
		return nil, nil, fmt.Errorf("loading tracker: %w", err)
	}
	return s, threads, nil
}

// regsCalibrated waits, after sys_enter is attached, for the minimal
// object to have measured where saved registers lie (bpf/regs.h): until
// then every thread's registers read as none, and a thread stuck since
// before attach would look idle. Any thread's syscall measures it, this
// one's included; a kernel whose pointers fail the check leaves it
// unset, and the tracker refuses to run blind.
func (m *Tracker) regsCalibrated() error {
	if m.regsOffset == nil {
		return nil
	}
	// sys_enter runs inside this syscall, before it returns.
	unix.Getpid()
	var off uint64
	if err := m.regsOffset.Get(&off); err != nil {
		return fmt.Errorf("reading the saved registers' offset: %w", err)
	}
	if off != 0 {
		return nil
	}
	return errors.New("the minimal object found no saved registers at sys_enter: it cannot tell which syscall a thread sleeps in")
}
