package guest

import (
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/stallmon/stallmon/internal/tracker"
)

// probes are the running kernel's verdicts on the tracker's features,
// probed once per test binary: each round loads trial programs.
var probes = sync.OnceValue(func() []tracker.Probe { return tracker.ProbeKernel(tracker.Features()) })

// requireProbed skips t unless the probes find the tracker feature named
// name on this kernel (a guest boots Linux 5.10 on purpose), saying what
// needs it; a probe that cannot tell fails t.
func requireProbed(t *testing.T, name, why string) {
	t.Helper()
	ps := probes()
	i := slices.IndexFunc(ps, func(p tracker.Probe) bool { return p.Name == name })
	switch {
	case i < 0:
		t.Fatalf("the tracker has no feature %q", name)
	case ps[i].Err != nil:
		t.Fatalf("probing for %s: %v", name, ps[i].Err)
	case !ps[i].Present:
		t.Skipf("%s needs %s (Linux %s+), which the probes do not find on this kernel", why, name, ps[i].Kernel)
	}
}

// requireSampled skips t where the probes refuse the sampled tracker
// (bpf_task_pt_regs and the full object): TestOldKernelIsRefused checks
// that refusal, in the boot of such a kernel.
func requireSampled(t *testing.T) {
	t.Helper()
	if _, missing, err := tracker.ObjectFor(probes(), tracker.ProbeFeatures, tracker.Sampled); err != nil {
		t.Skipf("the sampled tracker is refused on this kernel, which lacks %s (TestOldKernelIsRefused checks the refusal): %v",
			strings.Join(missing, ", "), err)
	}
}
