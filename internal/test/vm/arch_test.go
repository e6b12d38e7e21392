package vm

// guestArch is how the harness builds for and boots one architecture.
type guestArch struct {
	debian string // Debian's name: linux-image-DEBIAN, busybox-static's arch
	goarch string
	qemu   string // the QEMU binary, and the package that provides it
	pkg    string
	// console is the serial console's device for console=.
	console string
	// debugExit is set where QEMU has isa-debug-exit (x86 only): the
	// guest's verdict then leaves as QEMU's exit status as well as on the
	// console. Elsewhere /init powers off and the console line is all.
	debugExit bool
	// cross is the GNU triplet of this architecture's cross-compilers on
	// the amd64 host, for faultmod.ko; empty for amd64 itself.
	cross string
}

var (
	amd64 = &guestArch{debian: "amd64", goarch: "amd64", qemu: "qemu-system-x86_64", pkg: "qemu-system-x86",
		console: "ttyS0", debugExit: true}
	// bookworm's qemu-system-arm (7.2) provides qemu-system-aarch64.
	arm64 = &guestArch{debian: "arm64", goarch: "arm64", qemu: "qemu-system-aarch64", pkg: "qemu-system-arm",
		console: "ttyAMA0", cross: "aarch64-linux-gnu"}
)

// machine returns QEMU's accelerator, machine and CPU arguments.
func (a *guestArch) machine(kvm bool) []string {
	if a == arm64 {
		// Always emulated: the host is amd64. thread=single for the same
		// reason as on x86 (the kernel patches its own text when the
		// tracepoints attach), and neoverse-n1 is an ARMv8.2 server core
		// like the Graviton 2 and Ampere Altra that HA clusters run on.
		return []string{"-M", "virt", "-accel", "tcg,thread=single", "-cpu", "neoverse-n1"}
	}
	// thread=single: with one host thread per vCPU (QEMU 7.2's default),
	// Debian's 6.1 hung in two runs of three, both vCPUs stuck in
	// syscall_trace_enter on the int3 that text_poke_bp plants while the
	// raw_syscalls tracepoints are attached or detached (soft lockups,
	// RCU stalls): cross-modifying code that multi-threaded TCG mishandles.
	// One thread for both vCPUs never hung and costs a second or two.
	if kvm {
		return []string{"-accel", "kvm", "-cpu", "host"}
	}
	return []string{"-accel", "tcg,thread=single", "-cpu", "max"}
}

// kernelArgs are the command line words this architecture needs.
func (a *guestArch) kernelArgs() []string {
	args := []string{"console=" + a.console}
	if a == amd64 {
		// Debian builds the x32 ABI in but turns it off unless asked: the
		// guest's 32-bit test runs an x32 program too.
		args = append(args, "syscall.x32=y")
		// Under TCG on a loaded host the early check that the timer
		// reaches the IO-APIC can miss its ticks and panic the boot
		// ("IO-APIC + timer doesn't work!"): seen with lanes booting side
		// by side at load 30. QEMU wires the timer right; skip the check.
		args = append(args, "no_timer_check")
	}
	return args
}
