package tracker

import (
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// userWorkerKernel is where PF_USER_WORKER (0x4000) came in; before it the
// bit was PF_USED_ASYNC, which says nothing about who made the thread.
// This is the one place the tracker still reads the release: the flag is
// a #define, absent from the kernel's BTF, and no load or helper probe
// sees what a task flag bit means. A wrong guess only changes whether a
// thread the kernel made is told apart from one the service made.
var userWorkerKernel = [2]int{6, 4}

// kernelVersion is the running kernel's MAJOR.MINOR, zero when its
// release does not parse.
func kernelVersion() [2]int {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return [2]int{}
	}
	v, _ := parseRelease(unix.ByteSliceToString(u.Release[:]))
	return v
}

func atLeast(v, min [2]int) bool { return v[0] > min[0] || (v[0] == min[0] && v[1] >= min[1]) }

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
