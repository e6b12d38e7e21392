package tracker

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// ErrPermission reports missing privileges, naming what is missing.
var ErrPermission = errors.New("insufficient privileges")

const (
	capSysAdmin = 21
	capPerfmon  = 38
	capBPF      = 39
)

// CheckAccess fails where nothing could be loaded for want of privileges,
// or where the kernel side would filter on the wrong PIDs.
func CheckAccess() error {
	if err := checkPIDNamespace(); err != nil {
		return err
	}
	return checkPrivileges()
}

// checkPrivileges fails with the names of the missing capabilities
// before anything is loaded, rather than with a bare EPERM from the
// kernel halfway through.
func checkPrivileges() error {
	eff, err := effectiveCaps()
	if err != nil {
		return fmt.Errorf("reading capabilities: %w", err)
	}
	has := func(c uint) bool { return eff&(1<<c) != 0 }
	if has(capSysAdmin) || (has(capBPF) && has(capPerfmon)) {
		return nil
	}
	var missing []string
	if !has(capBPF) {
		missing = append(missing, "CAP_BPF")
	}
	if !has(capPerfmon) {
		missing = append(missing, "CAP_PERFMON")
	}
	return fmt.Errorf("missing %s (or CAP_SYS_ADMIN) to load and attach BPF programs; run as root: %w",
		strings.Join(missing, " and "), ErrPermission)
}

func effectiveCaps() (uint64, error) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "CapEff:"); ok {
			return strconv.ParseUint(strings.TrimSpace(v), 16, 64)
		}
	}
	return 0, errors.New("no CapEff line in /proc/self/status")
}

// checkPIDNamespace refuses to run in a nested PID namespace: the kernel
// side filters on PIDs of the initial namespace, so a PID given from
// inside a container would silently watch the wrong process, or none.
func checkPIDNamespace() error {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return fmt.Errorf("reading /proc/self/status: %w", err)
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "NSpid:"); ok {
			if len(strings.Fields(v)) > 1 {
				return fmt.Errorf("stallmon runs in a nested PID namespace; run it in the host's: %w", ErrPermission)
			}
			return nil
		}
	}
	return nil
}
