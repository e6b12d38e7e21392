// Package guest holds tests that only mean something inside a VM of
// internal/test/vm, where its /init loads faultmod.ko and sets InVMEnv=1.
// Everywhere else they skip: the host has no faultmod module to drive.
package guest

// InVMEnv is set to 1 by the VM's /init for every test binary it runs.
const InVMEnv = "STALLMON_IN_VM"

// ScenarioEnv names the boot: empty for the main one, where all the
// suites run; otherwise a scenario that changes the guest for good (an
// oops, a node reset), which make vmtest boots on its own.
const ScenarioEnv = "vmtest_scenario"

// FenceMarker starts the console line that tells the host harness that
// stallmon, armed with --on-unkillable (method=reboot or watchdog), has
// sent its SIGKILL; the host then expects the VM to reset within the kill
// grace plus the method's delay, not to finish. It is said at the kill,
// not at stallmon's node_fence event: after that event a reboot(2) can
// come before the test has read it, and the line would never be written.
const FenceMarker = "stallmon-vm: killed, fencing armed"

// FenceLagField is the FenceMarker line's word that says, in
// milliseconds, how long after stallmon's kill event the line was
// written: the host subtracts it to time the reset from the kill.
const FenceLagField = "lag_ms"

// ResultPrefix marks a scenario's measured outcome in the test log; the
// host harness collects these lines into its summary.
const ResultPrefix = "RESULT "
