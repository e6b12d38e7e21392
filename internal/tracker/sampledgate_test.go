package tracker

import (
	"errors"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/stallmon/stallmon/internal/testutil/privtest"
)

// sampledVerdict is whether the probes let the sampled tracker load here,
// and what they find missing: probed once per test binary, since each
// round loads trial programs (about a second in make vmtest's guests).
var sampledVerdict = sync.OnceValues(func() ([]string, error) {
	_, missing, err := ObjectFor(ProbeKernel(Features()), defaultFeatures, Sampled)
	return missing, err
})

// requireSampled returns where the sampled tracker can load: the full
// object with bpf_task_pt_regs. Where the probes say it cannot (Linux
// 5.10's guest, or the minimal pass of make test), it checks the refusal
// instead: Attach fails with ErrMissingFeature naming bpf_task_pt_regs,
// loads nothing, and the test skips naming what the kernel lacks.
func requireSampled(t *testing.T) {
	t.Helper()
	privtest.Require(t)
	missing, verdict := sampledVerdict()
	if verdict == nil {
		return
	}
	m, err := Attach(Process(os.Getpid()), nil, Options{Kind: Sampled})
	if err == nil {
		m.Close()
		t.Fatalf("the probes refuse the sampled tracker (%v), yet it attached", verdict)
	}
	if !errors.Is(err, ErrMissingFeature) || !strings.Contains(err.Error(), "bpf_task_pt_regs") {
		t.Fatalf("sampled tracker refused with %v, want ErrMissingFeature naming bpf_task_pt_regs", err)
	}
	t.Skipf("the sampled tracker needs bpf_task_pt_regs and the full BPF object; the probes find missing: %s (its refusal checked: %v)",
		strings.Join(cmpOr(missing, "none, but --bpf-features=minimal"), ", "), err)
}
