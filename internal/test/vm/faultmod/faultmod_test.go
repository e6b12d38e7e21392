package faultmod

import (
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"unsafe"
)

// The Go constants are hand-written mirrors of faultmod.h: evaluate the
// header's #defines and compare, so that a renumbered ioctl fails here on
// the host rather than as ENOTTY inside a VM.
func TestConstantsMatchHeader(t *testing.T) {
	defs := parseHeader(t, "faultmod.h")
	for name, want := range map[string]uint64{
		"FAULTMOD_IOC_MAGIC":        IocMagic,
		"FAULTMOD_SLEEP_D":          IoctlSleepD,
		"FAULTMOD_SLEEP_KILLABLE":   IoctlSleepKillable,
		"FAULTMOD_OOPS_MUTEX":       IoctlOopsMutex,
		"FAULTMOD_OOPS_CONFIRM":     OopsConfirm,
		"FAULTMOD_OOPS":             IoctlOops,
		"FAULTMOD_LOCK":             IoctlLock,
		"FAULTMOD_SPIN":             IoctlSpin,
		"FAULTMOD_RELEASE":          IoctlRelease,
		"FAULTMOD_SPIN_MAX_SECONDS": SpinMaxSeconds,

		"FAULTMOD_HOLD_TASK_STORAGE":    IoctlHoldTaskStorage,
		"FAULTMOD_RELEASE_TASK_STORAGE": IoctlReleaseTaskStorage,
		"FAULTMOD_STORAGE_DEPTH_MAX":    StorageDepthMax,
	} {
		got, ok := defs[name]
		if !ok {
			t.Errorf("%s: not defined in faultmod.h", name)
			continue
		}
		if got != want {
			t.Errorf("%s = %#x in faultmod.h, %#x in Go", name, got, want)
		}
	}
}

var (
	defineRE = regexp.MustCompile(`^#define\s+(FAULTMOD_\w+)\s+(.+?)\s*$`)
	iocRE    = regexp.MustCompile(`^_IO(W|R|WR)?\((\w+),\s*(\d+)(?:,\s*((?:struct )?\w+))?\)$`)
)

// parseHeader evaluates the only forms faultmod.h uses: integer literals
// and _IO/_IOR/_IOW/_IOWR of the magic.
func parseHeader(t *testing.T, path string) map[string]uint64 {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("reading header: %v", err)
	}
	defs := map[string]uint64{}
	for line := range strings.Lines(string(b)) {
		m := defineRE.FindStringSubmatch(strings.TrimSpace(line))
		if m == nil || strings.HasSuffix(m[1], "_H") {
			continue
		}
		v, err := evalDefine(m[2], defs)
		if err != nil {
			t.Fatalf("%s: %v", m[1], err)
		}
		defs[m[1]] = v
	}
	return defs
}

func evalDefine(expr string, defs map[string]uint64) (uint64, error) {
	m := iocRE.FindStringSubmatch(expr)
	if m == nil {
		return strconv.ParseUint(strings.TrimRight(expr, "UL"), 0, 64)
	}
	magic, ok := defs[m[2]]
	if !ok {
		return 0, fmt.Errorf("%s used before its definition", m[2])
	}
	nr, err := strconv.ParseUint(m[3], 10, 8)
	if err != nil {
		return 0, err
	}
	sizes := map[string]uint64{"": 0, "__u32": 4, "__u64": 8,
		// The Go mirror's size: a field added on one side only shows.
		"struct faultmod_storage_hold": uint64(unsafe.Sizeof(storageHold{}))}
	size, ok := sizes[m[4]]
	if !ok {
		return 0, fmt.Errorf("unknown ioctl argument type %q", m[4])
	}
	dir := map[string]uint64{"": 0, "W": 1, "R": 2, "WR": 3}[m[1]]
	return dir<<30 | size<<16 | magic<<8 | nr, nil
}
