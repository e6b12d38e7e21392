package vm

// arm64Subset is what the arm64 lane runs under TCG emulation, where a
// guest runs several times slower than an amd64 one: the BPF object for
// arm64 loads and attaches (TestCloseLeaksNothing), a hung read is found
// with its syscall name and fd (TestHungSyscallReported), a read that was
// hung before attach is named from the saved registers, the iterator's
// bpf_task_pt_regs path (TestSyscallInFlightBeforeAttach), fds are
// classified in the kernel and the first argument is read from those
// registers (TestFDKindsFromKernel), the sampled tracker ages only calls
// that never return (TestSampledAgesOnlyCallsThatNeverReturn), and
// stallmon itself reports, stops the heartbeat and kills, with either
// tracker, sparing a pipe read (TestHungFUSEReadIsKilled and its sampled
// twin). With faultmod.ko, cross-built: a thread in D that SIGKILL cannot
// end is reported unkillable, with either tracker, and a syscall spinning
// on the CPU is flagged and cleared when it returns, not killed.
var arm64Subset = &subset{
	pkgs: []string{"./internal/tracker/", "./internal/test/vm/guest/"},
	run: "^(TestCloseLeaksNothing|TestHungSyscallReported|TestSyscallInFlightBeforeAttach|TestFDKindsFromKernel" +
		"|TestSampledAgesOnlyCallsThatNeverReturn|TestHungFUSEReadIsKilled|TestSampledHungFUSEReadIsKilled" +
		"|TestIoctlsExist|TestSleepDIgnoresSIGKILL|TestUnkillableIsReported|TestSampledUnkillableIsReported" +
		"|TestKernelSpinIsFlaggedOnCPU)$",
	// fuse for the FUSE hangs; no watchdog: no fence boot.
	modules:  []string{"fuse"},
	faultmod: true,
	why: "one boot, no scenario boots (oops, fence by reboot and by watchdog: a boot each, too slow emulated);" +
		" no 32-bit programs (aarch32 needs an arm cross-compiler and a kernel with COMPAT, untested)",
}
