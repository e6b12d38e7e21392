package tracker

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/stallmon/stallmon/internal/testutil/privtest"
)

// sampledRefusal says why the sampled tracker cannot load here, or nil
// where it can: the probes' verdict, then the refusal Attach gives, which
// must be ErrMissingFeature naming bpf_task_pt_regs. Found once per test
// binary: the probes load trial programs, and the refused Attach tries
// the full object first (seconds in make vmtest's emulated guests).
var sampledRefusal = sync.OnceValues(func() (skip string, bad error) {
	_, missing, verdict := ObjectFor(ProbeKernel(Features()), defaultFeatures, Sampled)
	if verdict == nil {
		return "", nil
	}
	m, err := Attach(Process(os.Getpid()), nil, Options{Kind: Sampled})
	if err == nil {
		m.Close()
		return "", fmt.Errorf("the probes refuse the sampled tracker (%v), yet it attached", verdict)
	}
	if !errors.Is(err, ErrMissingFeature) || !strings.Contains(err.Error(), "bpf_task_pt_regs") {
		return "", fmt.Errorf("sampled tracker refused with %v, want ErrMissingFeature naming bpf_task_pt_regs", err)
	}
	return fmt.Sprintf("the sampled tracker needs bpf_task_pt_regs and the full BPF object; the probes find missing: %s (its refusal checked: %v)",
		strings.Join(cmpOr(missing, "none, but --bpf-features=minimal"), ", "), err), nil
})

// requireSampled returns where the sampled tracker can load: the full
// object with bpf_task_pt_regs. Where the probes say it cannot (Linux
// 5.10's guest, or the minimal pass of make test), it checks the refusal
// instead (sampledRefusal) and skips t naming what the kernel lacks.
func requireSampled(t *testing.T) {
	t.Helper()
	privtest.Require(t)
	skip, bad := sampledRefusal()
	if bad != nil {
		t.Fatal(bad)
	}
	if skip != "" {
		t.Skip(skip)
	}
}
