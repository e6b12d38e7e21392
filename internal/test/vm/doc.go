// Package vm boots Debian's kernels in QEMU and runs stallmon's
// privileged test suites inside them, so that the BPF programs are proven
// on the kernels users run and not only on the host's.
//
// Run it as root with `make vmtest`, which sets VMTestEnv=1; a plain
// `go test ./...` skips TestKernels, since it downloads kernels and boots
// VMs for minutes. Settings, all optional, from the environment:
//
//	VMTEST_KERNELS   kernel lines to boot (default "bookworm,bookworm-backports,bullseye-security,bookworm-arm64,bullseye-arm64")
//	VMTEST_PKGS      packages to test in the amd64 guests (default "./internal/tracker/ ./internal/listenq/ ./heartbeat/ ./peer/ ./internal/test/vm/guest/")
//	VMTEST_RUN       -test.run pattern for the guest's test binaries (replaces a lane's own)
//	VMTEST_CMDLINE   extra kernel command line words (e.g. loglevel=7 for stack traces of a hang)
//	VMTEST_TIMEOUT   limit per VM, boot included (default 15m)
//	VMTEST_CACHE     where .debs, extracted kernels and logs live (default internal/test/vm/.cache)
//	VMTEST_PARALLEL  how many kernel lanes boot at once (default: the host's CPUs, halved under KVM)
//
// What the boots need (test binaries, kernels, modules, faultmod) is
// made first, one lane after the other; then the lanes boot side by side,
// two at a time on the 2-CPU CI host: a TCG guest runs on one host thread.
// Each kernel boots once with every suite, then once per scenario that
// changes the guest for good (scenarios_test.go): an oops, and a node
// fence by reboot and by watchdog, whose reset the host checks from the
// console and QEMU's exit status. VMTEST_RUN skips the scenario boots.
// Bullseye's 5.10 (bullseye-security, and bullseye-arm64 emulated) lacks
// what the full BPF object needs: every attach there loads the minimal
// object. The amd64 lane (subset_test.go: bullseyeSubset) runs the guest
// suites of every package of the default VMTEST_PKGS: the tests of what
// 5.10 lacks (the sampled tracker, the task storage lock) skip there
// naming the feature the probes miss, the sampled ones after checking
// its refusal; a hung FUSE read and a killable D sleep (faultmod's
// FAULTMOD_SLEEP_KILLABLE) are found and killed, an unkillable D sleep is
// reported unkillable. It boots once more to check that the sampled
// tracker is refused and the target left alone, and no scenario boot.
// Booted alone (VMTEST_KERNELS=bullseye-security), its guest has only its
// packages' test binaries, not the 32-bit and C programs of the full
// lanes: the tests that need those skip, saying so; booted with the
// other amd64 lanes, it shares their guest and runs them. Booted alone it
// took 280 s in all, build included, 248 s of it the main boot (the
// tracker's tests 159 s), on a 2-CPU host at load 6-30; with the full
// lanes' guest, as make vmtest boots it, 554 s at load 5-19 (the tracker
// 392 s): make vmtest's summary prints each lane's time
// ("bullseye-security: N s in all").
// The arm64 5.10 lane runs a subset (arm64MinimalSubset).
//
// The arm64 lane (bookworm-arm64: bookworm-security's linux-image-arm64)
// boots under qemu-system-aarch64, emulated (TCG, -M virt -cpu
// neoverse-n1, console ttyAMA0), with Debian's arm64 busybox and test
// binaries cross-built with GOARCH=arm64 CGO_ENABLED=0. It runs a subset
// (subset_test.go: arm64Subset) to keep within CI's time: attach, a hung
// read named with its fd, the saved-register read, fd kinds, the sampled
// tracker, a kill by either tracker, faultmod's D-state and spin cases,
// then the oops (without its 32-bit thread) and both fence boots. faultmod
// is cross-built by Debian's gcc-12-aarch64-linux-gnu, unpacked into the
// cache, not installed: it conflicts with gcc-multilib. The virt machine
// has no isa-debug-exit: the verdict is /init's done line, after a clean
// power-off (QEMU exit 0). The lane took 147 s, 181 s and 200 s with the
// downloads cached, 244 s from an empty cache, 280 s beside stress-ng
// --cpu 2 --cpu-load 60, on a 2-CPU host at load 7-11: make vmtest's
// summary prints each lane's time ("bookworm-arm64: N s in all").
//
// The guest side lives in guest/ (tests that only run in the VM)
// and faultmod/ (a kernel module that reproduces kernel bugs, and
// its Go bindings).
package vm

// VMTestEnv must be 1 for TestKernels to run.
const VMTestEnv = "STALLMON_VMTEST"
