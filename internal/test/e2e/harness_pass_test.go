package e2e

import (
	"slices"
	"sync/atomic"
	"testing"
)

// The minimal pass's flags go to attach and run only, right after the
// subcommand, and its check fails every attached event that does not
// name the minimal object: a pass that loaded the full object, or an
// event that lost its bpf_object, proves nothing.
func TestMinimalPassFlagsAndCheck(t *testing.T) {
	t.Setenv(TrackerEnv, "")
	t.Setenv(BPFFeaturesEnv, "minimal")
	for _, c := range []struct{ in, want []string }{
		{[]string{"attach", "--pid", "1"}, []string{"attach", "--bpf-features", "minimal", "--pid", "1"}},
		{[]string{"run", "--", "sh"}, []string{"run", "--bpf-features", "minimal", "--", "sh"}},
		{[]string{"listen", "--json"}, []string{"listen", "--json"}},
	} {
		if got := withPassFlags(slices.Clone(c.in)); !slices.Equal(got, c.want) {
			t.Errorf("withPassFlags(%q) = %q, want %q", c.in, got, c.want)
		}
	}

	var attached atomic.Bool
	check := minimalObjectCheck(&attached)
	if err := check(map[string]any{"msg": "stall", "bpf_object": "full"}); err != nil || attached.Load() {
		t.Errorf("a stall event: err %v, attached seen %v; want neither", err, attached.Load())
	}
	for _, obj := range []any{"full", nil} {
		if err := check(map[string]any{"msg": "attached", "bpf_object": obj}); err == nil {
			t.Errorf("attached with bpf_object %v passed the minimal pass's check", obj)
		}
	}
	if err := check(map[string]any{"msg": "attached", "bpf_object": "minimal"}); err != nil || !attached.Load() {
		t.Errorf("attached with the minimal object: err %v, attached seen %v; want nil, true", err, attached.Load())
	}
}
