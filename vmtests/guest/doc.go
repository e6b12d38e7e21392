// Package guest holds tests that only mean something inside a vmtests VM,
// where the vmtests /init loads faultmod.ko and sets InVMEnv=1. Everywhere
// else they skip: the host has no faultmod module to drive.
package guest

// InVMEnv is set to 1 by the VM's /init for every test binary it runs.
const InVMEnv = "STALLMON_IN_VM"
