package tracker

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/features"
	"golang.org/x/sys/unix"

	"github.com/stallmon/stallmon/internal/cgroup"
)

// notSupported marks why a feature is absent.
func notSupported(why string) error { return fmt.Errorf("%s: %w", why, ebpf.ErrNotSupported) }

func probeKernelBTF(c *btf.Cache) error {
	_, err := c.Kernel()
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, ebpf.ErrNotSupported) {
		return notSupported(fmt.Sprintf("no kernel BTF: %v", err))
	}
	return err
}

// all is the conjunction of probes, the first absence or doubt winning.
func all(probes ...probe) probe {
	return func(c *btf.Cache) error {
		for _, p := range probes {
			if err := p(c); err != nil {
				return err
			}
		}
		return nil
	}
}

// rawTPHelpers probes helpers from raw tracepoint programs, the type of
// the syscall programs.
func rawTPHelpers(fns ...asm.BuiltinFunc) probe {
	return func(*btf.Cache) error {
		for _, fn := range fns {
			if err := features.HaveProgramHelper(ebpf.RawTracepoint, fn); err != nil {
				return fmt.Errorf("%v in raw tracepoints: %w", fn, err)
			}
		}
		return nil
	}
}

// iterSpec is a task iterator program running ins, then returning 0.
func iterSpec(ins ...asm.Instruction) *ebpf.ProgramSpec {
	return &ebpf.ProgramSpec{
		Name:         "stallmon_probe",
		Type:         ebpf.Tracing,
		AttachType:   ebpf.AttachTraceIter,
		AttachTo:     "task",
		License:      "GPL",
		Instructions: append(ins, asm.Mov.Imm(asm.R0, 0), asm.Return()),
	}
}

// loadProbe loads spec and unloads it. A failed load carries the
// verifier's log: cilium/ebpf loads once more with it. It loads spec as a
// collection of one, the only way to hand cilium/ebpf the kernel BTF
// already decoded: ebpf.NewProgram decodes it anew to find a tracing
// program's attach target, 20 ms each time on the CI host.
func loadProbe(spec *ebpf.ProgramSpec, c *btf.Cache) error {
	coll, err := ebpf.NewCollectionWithOptions(&ebpf.CollectionSpec{Programs: map[string]*ebpf.ProgramSpec{spec.Name: spec}},
		ebpf.CollectionOptions{Cache: c})
	if err != nil {
		return err
	}
	coll.Close()
	return nil
}

func probeTaskIter(c *btf.Cache) error {
	err := loadProbe(iterSpec(), c)
	if errors.Is(err, btf.ErrNotFound) || errors.Is(err, ebpf.ErrNotSupported) {
		return notSupported(fmt.Sprintf("loading a task iterator: %v", err))
	}
	if err != nil {
		return fmt.Errorf("loading a task iterator: %w", err)
	}
	return nil
}

// iterHelper probes a helper from task iterators. cilium/ebpf's
// features.HaveProgramHelper has no probe for tracing programs, whose
// loads need an attach target: this one loads a task iterator that calls
// fn with whatever the registers hold, and reads the verifier's answer
// the way features does. The helper is looked up before its arguments are
// checked, so a refusal of the arguments (EACCES) means it is there.
func iterHelper(fn asm.BuiltinFunc) probe {
	return func(c *btf.Cache) error {
		if err := probeTaskIter(c); err != nil {
			return err
		}
		err := loadProbe(iterSpec(fn.Call()), c)
		if err == nil {
			return nil
		}
		// Only the verifier's own words tell: an EACCES or EINVAL from
		// elsewhere (an LSM, a kernel that words things otherwise) is a
		// doubt, never a presence.
		var verr *ebpf.VerifierError
		if errors.As(err, &verr) {
			if line, ok := helperRefused(verr.Log, fn); ok && errors.Is(err, unix.EINVAL) {
				return notSupported(fmt.Sprintf("%v in task iterators: %s", fn, line))
			}
			if errors.Is(err, unix.EACCES) && argumentRefused(verr.Log) {
				return nil
			}
		}
		return fmt.Errorf("probing %v in task iterators: %w", fn, err)
	}
}

// helperRefused finds the verifier's line saying it does not know fn or
// does not give it to this program type (its wording changed over the
// years), among the last lines of the log.
func helperRefused(log []string, fn asm.BuiltinFunc) (string, bool) {
	tag := fmt.Sprintf("#%d", fn)
	for _, line := range log[max(len(log)-5, 0):] {
		if !strings.Contains(line, tag) {
			continue
		}
		for _, says := range []string{"invalid func", "unknown func", "cannot use helper"} {
			if strings.Contains(line, says) {
				return line, true
			}
		}
	}
	return "", false
}

// argumentRefused finds, among the last lines of the verifier's log, its
// refusal of a helper's argument: the helper was found.
func argumentRefused(log []string) bool {
	for _, line := range log[max(len(log)-5, 0):] {
		if strings.Contains(line, "type=") && strings.Contains(line, "expected=") {
			return true
		}
	}
	return false
}

// atomicOps are the atomic instructions of the object (features_test.go
// checks that none is missing), applied to a zeroed stack slot.
var atomicOps = []asm.Instruction{
	atomicOnStack(asm.AddAtomic), atomicOnStack(asm.AndAtomic), atomicOnStack(asm.OrAtomic), atomicOnStack(asm.FetchAdd),
}

// atomicOnStack is `*(u64 *)(r10 - 8) op= r1`. cilium/ebpf v0.22 encodes an
// atomic instruction's operation from its Constant, which AtomicOp.Mem
// leaves 0: without it every one would go out as a plain add, which even
// 5.10 accepts.
func atomicOnStack(op asm.AtomicOp) asm.Instruction {
	ins := op.Mem(asm.RFP, asm.R1, asm.DWord, -8)
	ins.Constant = int64(op >> 8)
	return ins
}

// errENOTSUPP is the kernel's internal ENOTSUPP (524), which a failed JIT
// returns where the interpreter is compiled out.
const errENOTSUPP = unix.Errno(524)

// probeAtomics loads a raw tracepoint program using the object's atomic
// instructions. A helper probe cannot tell: the x86 verifier learnt them
// in 5.12, but arm64 5.15-5.17 verify them and then fail in the JIT, so
// only a load that goes through the JIT answers.
func probeAtomics(c *btf.Cache) error {
	ins := asm.Instructions{
		asm.Mov.Imm(asm.R1, 0),
		asm.StoreMem(asm.RFP, -8, asm.R1, asm.DWord),
		asm.Mov.Imm(asm.R1, 1),
	}
	ins = append(ins, atomicOps...)
	ins = append(ins, asm.Mov.Imm(asm.R0, 0), asm.Return())
	err := loadProbe(&ebpf.ProgramSpec{Name: "stallmon_atomic", Type: ebpf.RawTracepoint, License: "GPL", Instructions: ins}, c)
	var verr *ebpf.VerifierError
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ebpf.ErrNotSupported), errors.Is(err, errENOTSUPP),
		errors.As(err, &verr) && errors.Is(err, unix.EINVAL):
		return notSupported(fmt.Sprintf("loading atomic instructions: %v", err))
	}
	return fmt.Errorf("loading atomic instructions: %w", err)
}

// probeIterFilterAlone asks probeIterFilter with an iterator of its own,
// for when the tracker's is not loaded.
func probeIterFilterAlone(c *btf.Cache) error {
	if err := probeTaskIter(c); err != nil {
		return err
	}
	spec := iterSpec()
	coll, err := ebpf.NewCollectionWithOptions(&ebpf.CollectionSpec{Programs: map[string]*ebpf.ProgramSpec{spec.Name: spec}},
		ebpf.CollectionOptions{Cache: c})
	if err != nil {
		return fmt.Errorf("loading a task iterator: %w", err)
	}
	defer coll.Close()
	ok, err := probeIterFilter(coll.Programs[spec.Name])
	if err != nil {
		return err
	}
	if !ok {
		return notSupported("the kernel refuses a task iterator's pid filter")
	}
	return nil
}

// probeCgroupKill looks for cgroup.kill in a cgroup other than the root,
// which never has one; on a host with no other cgroup, for the function
// that writes it in the kernel's BTF.
func probeCgroupKill(c *btf.Cache) error {
	return probeCgroupFile(c, "cgroup.kill", "cgroup_kill_write")
}

// probePidfdNonblock opens a pidfd to stallmon itself the way the target
// is opened: a kernel without the flag (before 5.10) refuses it with
// EINVAL, one without pidfd_open (before 5.3) with ENOSYS.
func probePidfdNonblock(*btf.Cache) error {
	fd, err := unix.PidfdOpen(os.Getpid(), unix.PIDFD_NONBLOCK)
	switch {
	case err == nil:
		return unix.Close(fd)
	case errors.Is(err, unix.EINVAL), errors.Is(err, unix.ENOSYS):
		return fmt.Errorf("pidfd_open(PIDFD_NONBLOCK): %w: %w", ebpf.ErrNotSupported, err)
	}
	return fmt.Errorf("pidfd_open(PIDFD_NONBLOCK): %w", err)
}

// probeCgroupFreeze is probeCgroupKill for cgroup.freeze.
func probeCgroupFreeze(c *btf.Cache) error {
	return probeCgroupFile(c, "cgroup.freeze", "cgroup_freeze_write")
}

func probeCgroupFile(c *btf.Cache, file, fn string) error {
	root, err := cgroup.Root()
	if err != nil {
		return err
	}
	dir := ""
	if own, err := cgroup.Own(); err == nil && own.Path != root {
		dir = own.Path
	} else {
		entries, err := os.ReadDir(root)
		if err != nil {
			return fmt.Errorf("listing %s: %w", root, err)
		}
		for _, e := range entries {
			if e.IsDir() {
				dir = filepath.Join(root, e.Name())
				break
			}
		}
	}
	if dir == "" {
		return kernelHasFunc(c, fn)
	}
	_, err = os.Stat(filepath.Join(dir, file))
	if errors.Is(err, fs.ErrNotExist) {
		return notSupported(fmt.Sprintf("%s has no %s", dir, file))
	}
	return err
}

func kernelHasFunc(c *btf.Cache, name string) error {
	spec, err := c.Kernel()
	if err != nil {
		return fmt.Errorf("reading the kernel's BTF: %w", err)
	}
	var fn *btf.Func
	err = spec.TypeByName(name, &fn)
	if errors.Is(err, btf.ErrNotFound) {
		return notSupported(fmt.Sprintf("no function %s in the kernel's BTF", name))
	}
	return err
}
