package vm

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stallmon/stallmon/internal/test/vm/guest"
)

// scenarioBoot is a boot of its own for a guest scenario that changes the
// guest for good: an oops taints the kernel and leaves a lock held for
// ever, a node fence resets the VM.
type scenarioBoot struct {
	name string // vmtest_scenario, see guest.ScenarioEnv
	run  string // -test.run for the guest binary
	// reset is set for a scenario that must end in a reset of the VM:
	// QEMU (-no-reboot) then exits 0 with no verdict from /init, after
	// the guest said guest.FenceMarker and the kernel said resetMsg.
	reset    bool
	resetMsg string
	// resetWithin bounds the time from the kill (the marker, less the lag
	// it states) to resetMsg: the kill grace, then the watchdog's timeout
	// or at once for reboot(2), plus slack for the emulated guest.
	resetWithin time.Duration
	// oops is set for a scenario that injects a kernel BUG(): the kernel
	// it leaves behind can crash later on its own (seen once in some
	// twenty boots of 6.12 under TCG: a nested fault on a return to user
	// mode, "Fatal exception in interrupt"). Such a boot says nothing of
	// stallmon and is booted once more, saying so.
	oops bool
}

// fenceGrace is the --kill-grace of guest/fence_test.go: the reset may
// come no sooner after the kill.
const fenceGrace = time.Second

var scenarioBoots = []scenarioBoot{
	{name: "oops", run: "^TestOops$", oops: true},
	{name: "fence-reboot", run: "^TestNodeFence$/^reboot$", reset: true,
		resetMsg: "reboot: Restarting system", resetWithin: fenceGrace + 5*time.Second},
	// stallmon sets softdog's timeout to 3s (guest/fence_test.go).
	{name: "fence-watchdog", run: "^TestNodeFence$/^watchdog$", reset: true,
		resetMsg: "softdog: Initiating system reboot", resetWithin: fenceGrace + 10*time.Second},
}

// refusedBoot is the boot of a kernel that refuses the sampled tracker
// (Linux 5.10, bullseyeSubset): attach --tracker=sampled must fail naming
// what is missing and leave its target alone; doctor must find what that
// kernel has and has not.
var refusedBoot = scenarioBoot{name: "old-kernel", run: "^(TestOldKernelIsRefused|TestDoctorOnOldKernel|TestMemlockLiftedOnOldKernel)$"}

// bootScenario boots k for one scenario and checks how the boot ended.
func bootScenario(t *testing.T, k *kernel, sc scenarioBoot, ir initramfs, cache string, timeout time.Duration, kvm bool) *vmResult {
	cmdline := []string{"vmtest_run=" + sc.run, guest.ScenarioEnv + "=" + sc.name}
	r := bootWith(t, k, ir, sc.name, cmdline, cache, timeout, kvm)
	if sc.oops && !r.ok() && r.panickedAfterOops() {
		t.Logf("the guest kernel panicked after the oops it was given, on its own (console tail below); booting once more:\n%s",
			tail(r.lines, 12))
		r = bootWith(t, k, ir, sc.name+"-again", cmdline, cache, timeout, kvm)
	}
	r.wantReset = sc.reset
	for _, l := range r.results() {
		t.Log(l)
	}
	if !sc.reset {
		if !r.ok() {
			t.Errorf("%s; console tail:\n%s", r.verdict(), tail(r.lines, 80))
		}
		if len(r.results()) == 0 {
			t.Errorf("the scenario reported no %q line: did it run?", guest.ResultPrefix)
		}
		return r
	}
	marker := fmt.Sprintf("%s method=%s", guest.FenceMarker, strings.TrimPrefix(sc.name, "fence-"))
	fencedAt, okMarker := r.killTime(marker)
	resetAt, okReset := r.lineTime(sc.resetMsg)
	switch {
	case r.timedOut:
		t.Errorf("timed out: the node was never reset; console tail:\n%s", tail(r.lines, 80))
	case r.status >= 0 || r.done >= 0:
		t.Errorf("the guest finished (status %d) instead of being reset; console tail:\n%s", r.status, tail(r.lines, 80))
	case !okMarker:
		t.Errorf("no %q on the console: stallmon never killed; console tail:\n%s", marker, tail(r.lines, 80))
	case !okReset:
		t.Errorf("no %q on the console: the reset did not come from %s; console tail:\n%s", sc.resetMsg, sc.name, tail(r.lines, 80))
	case r.qemuExit != 0:
		t.Errorf("qemu exited %d, want 0 (a guest reset under -no-reboot)", r.qemuExit)
	case resetAt-fencedAt < fenceGrace || resetAt-fencedAt > sc.resetWithin:
		t.Errorf("reset %v after stallmon's kill, want between the kill grace %v and %v", resetAt-fencedAt, fenceGrace, sc.resetWithin)
	default:
		r.extra = append(r.extra, fmt.Sprintf("%s%s: node reset %.1fs after stallmon's kill, kill grace %v (%q)",
			guest.ResultPrefix, sc.name, (resetAt-fencedAt).Seconds(), fenceGrace, sc.resetMsg))
	}
	return r
}

// results returns the guest's RESULT lines and the harness's own.
// panickedAfterOops reports a guest kernel that died of a fatal exception
// after an injected BUG(), rather than a guest test that failed.
func (r *vmResult) panickedAfterOops() bool {
	bug, panicked := false, false
	for _, l := range r.lines {
		bug = bug || strings.Contains(l, "faultmod: BUG()")
		panicked = panicked || (bug && strings.Contains(l, "Kernel panic - not syncing"))
	}
	return panicked
}

func (r *vmResult) results() []string {
	var out []string
	for _, l := range r.lines {
		if i := strings.Index(l, guest.ResultPrefix); i >= 0 {
			out = append(out, strings.TrimSpace(l[i:]))
		}
	}
	return append(out, r.extra...)
}

// killTime returns when stallmon killed, on the host's clock: when the
// guest's line containing marker arrived, less the lag the line states
// (guest.FenceLagField).
func (r *vmResult) killTime(marker string) (time.Duration, bool) {
	i := slices.IndexFunc(r.lines, func(l string) bool { return strings.Contains(l, marker) })
	if i < 0 {
		return 0, false
	}
	lag := atoiOr(parseFields(r.lines[i])[guest.FenceLagField], 0)
	return r.times[i] - time.Duration(lag)*time.Millisecond, true
}

// lineTime returns when the first console line containing s arrived,
// counted from QEMU's start.
func (r *vmResult) lineTime(s string) (time.Duration, bool) {
	i := slices.IndexFunc(r.lines, func(l string) bool { return strings.Contains(l, s) })
	if i < 0 {
		return 0, false
	}
	return r.times[i], true
}
