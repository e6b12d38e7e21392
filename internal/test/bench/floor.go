package bench

import (
	"errors"
	"fmt"
	"io"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/rlimit"
)

// floor is a pair of programs that do nothing, attached where stallmon's
// tracker attaches (raw tracepoints sys_enter and sys_exit): what any
// tracker on these tracepoints costs before it does any work, since
// attaching them sends every syscall of the machine down the kernel's
// slow path. Built here from two instructions, so bpf/ and gen/ stay
// stallmon's own.
type floor struct{ links []link.Link }

// attachFloor loads and attaches the empty programs; Close detaches them.
func attachFloor() (io.Closer, error) {
	if err := rlimit.RemoveMemlock(); err != nil {
		return nil, fmt.Errorf("raising memlock limit: %w", err)
	}
	f := &floor{}
	for _, tp := range []string{"sys_exit", "sys_enter"} {
		prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
			Name:         "bench_floor",
			Type:         ebpf.RawTracepoint,
			License:      "GPL",
			Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 0), asm.Return()},
		})
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("loading the empty program for %s: %w", tp, err)
		}
		l, err := link.AttachRawTracepoint(link.RawTracepointOptions{Name: tp, Program: prog})
		// The link holds its own reference to the program.
		prog.Close()
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("attaching the empty program to %s: %w", tp, err)
		}
		f.links = append(f.links, l)
	}
	return f, nil
}

func (f *floor) Close() error {
	var errs []error
	for _, l := range f.links {
		errs = append(errs, l.Close())
	}
	return errors.Join(errs...)
}
