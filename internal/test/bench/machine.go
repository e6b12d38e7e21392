package bench

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"golang.org/x/sys/unix"
)

// vulnerabilitiesDir is where the kernel says how it mitigates each CPU
// vulnerability; the mitigations set the price of a syscall.
const vulnerabilitiesDir = "/sys/devices/system/cpu/vulnerabilities"

// Machine describes what the figures depend on: the CPU model (as lscpu's
// "Model name"), the CPU count, the kernel and its active mitigations.
func Machine() string {
	var uts unix.Utsname
	kernel := "unknown kernel"
	if err := unix.Uname(&uts); err == nil {
		kernel = "Linux " + unix.ByteSliceToString(uts.Release[:])
	}
	return fmt.Sprintf("%s, %d CPUs, %s; mitigations: %s", cpuModel(), runtime.NumCPU(), kernel, mitigations())
}

func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return "unknown CPU"
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown CPU"
}

// mitigations lists the vulnerabilities the kernel mitigates, with how.
func mitigations() string {
	paths, err := filepath.Glob(filepath.Join(vulnerabilitiesDir, "*"))
	if err != nil || len(paths) == 0 {
		return "unknown (no " + vulnerabilitiesDir + ")"
	}
	var out []string
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		v := strings.TrimSpace(string(b))
		if v == "Not affected" {
			continue
		}
		out = append(out, filepath.Base(p)+" ("+v+")")
	}
	if len(out) == 0 {
		return "none needed"
	}
	return strings.Join(out, "; ")
}
