package tracker

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// ErrKernelTooOld reports a kernel without what the tracker needs.
var ErrKernelTooOld = errors.New("kernel too old")

// minKernel is the oldest kernel the tracker loads on: BPF task storage
// for tracing programs and bpf_get_current_task_btf came in 5.11, the
// bpf_task_pt_regs helper the iterator reads saved registers with in 5.15.
// Older kernels would fail halfway through loading with a verifier error
// that names none of this.
var minKernel = [2]int{5, 15}

// checkKernel refuses kernels older than minKernel and returns the
// running kernel's version (zero if the release does not parse: that is
// no proof of an old kernel, and the load itself will say what is
// missing).
func checkKernel() ([2]int, error) {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return [2]int{}, fmt.Errorf("reading kernel release: %w", err)
	}
	release := unix.ByteSliceToString(u.Release[:])
	v, ok := parseRelease(release)
	if !ok {
		return [2]int{}, nil
	}
	if !atLeast(v, minKernel) {
		return v, fmt.Errorf("stallmon needs Linux %d.%d or later (BPF task storage, bpf_task_pt_regs); this kernel is %s: %w",
			minKernel[0], minKernel[1], release, ErrKernelTooOld)
	}
	return v, nil
}

func atLeast(v, min [2]int) bool { return v[0] > min[0] || (v[0] == min[0] && v[1] >= min[1]) }

// userWorkerKernel is where PF_USER_WORKER (0x4000) came in; before it the
// bit was PF_USED_ASYNC, which says nothing about who made the thread.
var userWorkerKernel = [2]int{6, 4}

// parseRelease reads "MAJOR.MINOR" from the front of a kernel release
// such as "6.1.0-57-amd64".
func parseRelease(s string) ([2]int, bool) {
	f := strings.SplitN(s, ".", 3)
	if len(f) < 2 {
		return [2]int{}, false
	}
	major, err1 := strconv.Atoi(f[0])
	minor, err2 := strconv.Atoi(strings.TrimRightFunc(f[1], func(r rune) bool { return r < '0' || r > '9' }))
	if err1 != nil || err2 != nil {
		return [2]int{}, false
	}
	return [2]int{major, minor}, true
}
