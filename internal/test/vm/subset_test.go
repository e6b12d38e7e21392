package vm

// arm64Subset is what the arm64 lane runs under TCG emulation, where a
// guest runs some ten times slower than an amd64 one: the BPF object for
// arm64 loads and attaches (TestCloseLeaksNothing), a hung read is found
// with its syscall name and fd (TestHungSyscallReported), a read that was
// hung before attach is named from the saved registers, the iterator's
// bpf_task_pt_regs path (TestSyscallInFlightBeforeAttach), fds are
// classified in the kernel and the first argument is read from those
// registers (TestFDKindsFromKernel), the sampled tracker ages only calls
// that never return (TestSampledAgesOnlyCallsThatNeverReturn), and
// stallmon itself reports, stops the heartbeat and kills, with either
// tracker, sparing a pipe read (TestHungFUSEReadIsKilled and its sampled
// twin).
var arm64Subset = &subset{
	pkgs: []string{"./internal/tracker/", "./internal/test/vm/guest/"},
	run: "^(TestCloseLeaksNothing|TestHungSyscallReported|TestSyscallInFlightBeforeAttach|TestFDKindsFromKernel" +
		"|TestSampledAgesOnlyCallsThatNeverReturn|TestHungFUSEReadIsKilled|TestSampledHungFUSEReadIsKilled)$",
	// fuse for the FUSE hangs; no watchdog: no fence boot.
	modules: []string{"fuse"},
	why: "no faultmod (not cross-built for arm64), so no faultmod, oops or fence scenarios;" +
		" no 32-bit programs (the arm64 kernel's aarch32 ABI needs an arm cross-compiler)",
}
