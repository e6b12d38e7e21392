package nodefence

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Linux watchdog ioctls (include/uapi/linux/watchdog.h).
const (
	wdiocKeepalive  = 0x80045705
	wdiocSetTimeout = 0xc0045706
)

// Watchdog feeds a hardware or software watchdog (/dev/watchdog) while
// stallmon works and stops feeding to fence: the watchdog then resets the
// node after its timeout, even if the kernel is too broken to reboot on
// request. Opening the device arms it.
type Watchdog struct {
	mu      sync.Mutex
	f       *os.File
	stopped bool
	timeout time.Duration
}

// watchdogMisc is the legacy /dev/watchdog, a misc device (10:130) that
// stands for the first watchdog.
const watchdogMisc = "10:130"

// CheckWatchdog says whether path is a watchdog device, without opening
// it: opening arms it, and a command line being checked must not. A
// watchdog is a character device that /sys/class/watchdog lists, or the
// legacy misc device.
func CheckWatchdog(path string) error {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFCHR {
		return fmt.Errorf("%s: not a character device", path)
	}
	dev := fmt.Sprintf("%d:%d", unix.Major(st.Rdev), unix.Minor(st.Rdev))
	if dev == watchdogMisc {
		return nil
	}
	listed, _ := filepath.Glob("/sys/class/watchdog/*/dev")
	for _, f := range listed {
		if b, err := os.ReadFile(f); err == nil && strings.TrimSpace(string(b)) == dev {
			return nil
		}
	}
	return fmt.Errorf("%s: device %s is not a watchdog (none such in /sys/class/watchdog)", path, dev)
}

// OpenWatchdog arms the watchdog at path with the given timeout.
func OpenWatchdog(path string, timeout time.Duration) (*Watchdog, error) {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return nil, fmt.Errorf("opening watchdog %s: %w", path, err)
	}
	secs := int32(timeout / time.Second)
	if secs < 1 {
		f.Close()
		return nil, errors.New("watchdog timeout must be at least 1s")
	}
	if err := ioctl(f, wdiocSetTimeout, unsafe.Pointer(&secs)); err != nil {
		// Not every driver can change its timeout; it keeps its own.
		secs = 0
	}
	w := &Watchdog{f: f, timeout: time.Duration(secs) * time.Second}
	return w, w.Feed()
}

// Timeout is the timeout the driver accepted, 0 if it kept its own.
func (w *Watchdog) Timeout() time.Duration { return w.timeout }

func (w *Watchdog) Feed() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.stopped {
		return nil
	}
	var dummy int32
	if err := ioctl(w.f, wdiocKeepalive, unsafe.Pointer(&dummy)); err != nil {
		return fmt.Errorf("feeding watchdog: %w", err)
	}
	return nil
}

// Fence stops feeding for good; the node resets when the timeout expires.
func (w *Watchdog) Fence() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.stopped = true
	return nil
}

// Close disarms with the magic close character unless fencing started
// (then the device is closed without it, and the reset still comes).
func (w *Watchdog) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.stopped {
		if _, err := w.f.Write([]byte("V")); err != nil {
			w.f.Close()
			return fmt.Errorf("disarming watchdog: %w", err)
		}
	}
	return w.f.Close()
}

func (w *Watchdog) String() string { return "watchdog" }

func ioctl(f *os.File, req uintptr, arg unsafe.Pointer) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var errno unix.Errno
	if err := rc.Control(func(fd uintptr) {
		_, _, errno = unix.Syscall(unix.SYS_IOCTL, fd, req, uintptr(arg))
	}); err != nil {
		return err
	}
	if errno != 0 {
		return errno
	}
	return nil
}
