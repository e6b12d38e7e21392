// Package vm boots Debian's kernels in QEMU and runs stallmon's
// privileged test suites inside them, so that the BPF programs are proven
// on the kernels users run and not only on the host's.
//
// Run it as root with `make vmtest`, which sets VMTestEnv=1; a plain
// `go test ./...` skips TestKernels, since it downloads kernels and boots
// VMs for minutes. Settings, all optional, from the environment:
//
//	VMTEST_KERNELS   kernel lines to boot (default "bookworm,bookworm-backports,bullseye-security")
//	VMTEST_PKGS      packages to test in the guest (default "./internal/tracker/ ./internal/listenq/ ./heartbeat/ ./peer/ ./internal/test/vm/guest/")
//	VMTEST_RUN       -test.run pattern for the guest's test binaries
//	VMTEST_CMDLINE   extra kernel command line words (e.g. loglevel=7 for stack traces of a hang)
//	VMTEST_TIMEOUT   limit per VM, boot included (default 15m)
//	VMTEST_CACHE     where .debs, extracted kernels and logs live (default internal/test/vm/.cache)
//
// Each kernel boots once with every suite, then once per scenario that
// changes the guest for good (scenarios_test.go): an oops, and a node
// fence by reboot and by watchdog, whose reset the host checks from the
// console and QEMU's exit status. VMTEST_RUN skips the scenario boots.
// A kernel older than stallmon supports (bullseye's 5.10) boots only once,
// to check that attach refuses it and leaves the target alone.
//
// The guest side lives in guest/ (tests that only run in the VM)
// and faultmod/ (a kernel module that reproduces kernel bugs, and
// its Go bindings).
package vm

// VMTestEnv must be 1 for TestKernels to run.
const VMTestEnv = "STALLMON_VMTEST"
