package tracker

import (
	"github.com/cilium/ebpf"

	"github.com/stallmon/stallmon/internal/bpfiter"
)

// probeIterFilter reports whether the kernel can limit a task iterator to
// one process (Linux 6.1).
func probeIterFilter(prog *ebpf.Program) (bool, error) { return bpfiter.HasFilter(prog) }
