package vm

import (
	"slices"
	"strings"
)

// arm64Subset is what the arm64 lane runs under TCG emulation, where a
// guest runs several times slower than an amd64 one. In its main boot:
// the BPF object for arm64 loads and attaches (TestCloseLeaksNothing), a
// hung read is found with its syscall name and fd
// (TestHungSyscallReported), a read hung before attach is named from the
// saved registers, the iterator's bpf_task_pt_regs path
// (TestSyscallInFlightBeforeAttach), fds are classified in the kernel and
// the first argument read from those registers (TestFDKindsFromKernel),
// the sampled tracker ages only calls that never return
// (TestSampledAgesOnlyCallsThatNeverReturn), and stallmon itself reports,
// stops the heartbeat and kills, with either tracker, sparing a pipe read
// (TestHungFUSEReadIsKilled and its sampled twin). With faultmod.ko,
// cross-built: a thread in D that SIGKILL cannot end is reported
// unkillable with either tracker, and a syscall spinning on the CPU is
// flagged and cleared when it returns, not killed. Then the scenario
// boots, as on amd64 but for the oops of a 32-bit thread.
var arm64Subset = &subset{
	pkgs: []string{"./internal/tracker/", "./internal/test/vm/guest/"},
	run: "^(TestCloseLeaksNothing|TestHungSyscallReported|TestSyscallInFlightBeforeAttach|TestFDKindsFromKernel" +
		"|TestSampledAgesOnlyCallsThatNeverReturn|TestHungFUSEReadIsKilled|TestSampledHungFUSEReadIsKilled" +
		"|TestIoctlsExist|TestSleepDIgnoresSIGKILL|TestUnkillableIsReported|TestSampledUnkillableIsReported" +
		"|TestKernelSpinIsFlaggedOnCPU)$",
	scenarios: []scenarioBoot{
		{name: "oops", oops: true, run: "^TestOops$/^(main_thread_dies_inside_the_syscall" +
			"|next_caller_blocks_forever_on_the_lock_it_left|event_loop_blocks_in_poll_on_the_lock_it_left)$"},
		scenarioNamed("fence-reboot"),
		scenarioNamed("fence-watchdog"),
	},
	why: "the main boot runs the subset of its -test.run pattern; the oops boot leaves out the 32-bit thread" +
		" (aarch32 programs need an arm cross-compiler, not installed)",
}

// bullseyeSubset is what the Linux 5.10 lane runs: the kernel lacks what
// the full BPF object needs (task storage in tracing programs, the
// current task's BTF pointer, bpf_task_pt_regs, the ancestor cgroup
// helper, atomics but add), so every attach here loads the minimal one.
// Its main boot runs the guest suites of every package of the default
// VMTEST_PKGS, no -test.run: what 5.10 lacks is decided in the tests by
// the probes (the sampled tracker's tests check its refusal and skip,
// the task storage lock's skip naming the feature), and faultmod's D
// sleeps are found there, the killable one killed, the other reported
// unkillable. The refusal boot proves the sampled tracker is refused
// naming bpf_task_pt_regs, and doctor's verdicts. No scenario boot: the
// oops and the fences are 6.1's and 6.12's.
var bullseyeSubset = &subset{
	pkgs: strings.Fields(defaultPkgs),
	// The tracker's 32-bit group (82 s of TCG here) runs on 6.1 and
	// 6.12 and in the host's minimal pass; TestIA32SyscallsNamed still
	// reads ia32 and x32 numbers with the minimal object on 5.10. Two
	// lanes boot side by side, and this one is the longest of its pair;
	// booted alone (VMTEST_KERNELS=bullseye-security) it runs them too.
	skip:      "^Test32Bit",
	scenarios: []scenarioBoot{refusedBoot},
	why:       "every test of the guest suites (beside other lanes, but the tracker's 32-bit group); the refusal boot checks the sampled tracker's refusal and doctor",
}

// arm64MinimalSubset is the arm64 lane's main boot on Linux 5.10, where
// the minimal object loads: it loads, attaches and leaves nothing, a hung
// read is named with its fd, one hung before attach from the registers
// at the measured offset, fds are classified, and stallmon kills a hung
// FUSE read and spares a pipe read.
var arm64MinimalSubset = &subset{
	pkgs: []string{"./internal/tracker/", "./internal/test/vm/guest/"},
	run: "^(TestCloseLeaksNothing|TestHungSyscallReported|TestSyscallInFlightBeforeAttach|TestFDKindsFromKernel" +
		"|TestHungFUSEReadIsKilled)$",
	why: "the main boot only, the tracepoint tracker's (the sampled one is refused on 5.10): the scenarios and " +
		"the D-state tests run on arm64 6.1 and amd64 5.10",
	noFaultmod: "5.10's headers take stdarg.h from the compiler, which the unpacked cross gcc-12 does not find",
}

// scenarioNamed returns the scenario boot of scenarioBoots called name.
func scenarioNamed(name string) scenarioBoot {
	i := slices.IndexFunc(scenarioBoots, func(sc scenarioBoot) bool { return sc.name == name })
	if i < 0 {
		panic("no scenario boot " + name)
	}
	return scenarioBoots[i]
}
