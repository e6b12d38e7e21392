package workload

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// A toucher is a raw thread (see startRawToucher) that loads one byte from
// a page that is not there yet and sleeps in the page fault, outside any
// syscall: touch-uffd's page is claimed by a userfaultfd nobody answers,
// touch-file's is the first page of a file mapped with mmap(2), whose file
// system must read it (a FUSE file whose server withholds the reply).

func (w *workload) touchUffd(args []string) ([]any, error) {
	if w.uffdTouch != nil {
		return nil, fmt.Errorf("thread %d already faults: send touch-uffd-release first", w.uffdTouch.th.id())
	}
	pages := 1
	if len(args) > 0 {
		n, err := strconv.Atoi(args[0])
		if err != nil || n < 1 {
			return nil, fmt.Errorf("pages: want a positive number, got %q", args[0])
		}
		pages = n
	}
	h, err := newUffdHang(pages)
	if err != nil {
		return nil, err
	}
	th, err := startRawToucher(uintptr(unsafe.Pointer(&h.page[0])), pages)
	if err != nil {
		h.close()
		return nil, err
	}
	h.th = th
	if err := waitAsleepOutside(th, 0); err != nil {
		h.release()
		return nil, err
	}
	w.uffdTouch = h
	return []any{"tid", th.tid}, nil
}

// touchUffdNext fills the page the toucher waits on and replies once it
// waits on the next one, or once it loaded the last and exited.
func (w *workload) touchUffdNext([]string) ([]any, error) {
	h := w.uffdTouch
	if h == nil {
		return nil, errors.New("no thread faults: send touch-uffd first")
	}
	page := h.next
	slept, err := voluntarySwitches(h.th.id())
	if err != nil {
		return nil, err
	}
	if err := h.fill(); err != nil {
		return nil, err
	}
	left := len(h.page)/unix.Getpagesize() - h.next
	if left == 0 {
		w.uffdTouch = nil
		b, err := h.release()
		if err != nil {
			return nil, err
		}
		return []any{"tid", h.th.id(), "page", page, "left", 0, "value", b}, nil
	}
	if err := waitAsleepOutside(h.th, slept); err != nil {
		return nil, err
	}
	return []any{"tid", h.th.id(), "page", page, "left", left}, nil
}

func (w *workload) touchUffdRelease([]string) ([]any, error) {
	h := w.uffdTouch
	if h == nil {
		return nil, errors.New("no thread faults: send touch-uffd first")
	}
	w.uffdTouch = nil
	b, err := h.release()
	if err != nil {
		return nil, err
	}
	return []any{"tid", h.th.id(), "value", b}, nil
}

// fileToucher is touch-file's thread and the mapping it faults on.
type fileToucher struct {
	th   *rawReader
	mem  []byte
	path string
}

func (w *workload) touchFile(args []string) ([]any, error) {
	if f := w.fileTouch; f != nil {
		if _, _, done := f.th.finished(); !done {
			return nil, fmt.Errorf("thread %d still faults on %s", f.th.tid, f.path)
		}
		unix.Munmap(f.mem)
		w.fileTouch = nil
	}
	path := args[0]
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", path, err)
	}
	// The mapping keeps the file; the fd is not needed for the fault.
	mem, err := unix.Mmap(fd, 0, unix.Getpagesize(), unix.PROT_READ, unix.MAP_PRIVATE)
	unix.Close(fd)
	if err != nil {
		return nil, fmt.Errorf("mapping %s: %w", path, err)
	}
	// No readahead: the fault reads its page itself and waits for the
	// file system's answer (on FUSE in S, request_wait_answer), rather
	// than waiting in D for a page that background readahead fills.
	if err := unix.Madvise(mem, unix.MADV_RANDOM); err != nil {
		unix.Munmap(mem)
		return nil, fmt.Errorf("madvise(MADV_RANDOM) on %s: %w", path, err)
	}
	th, err := startRawToucher(uintptr(unsafe.Pointer(&mem[0])), 1)
	if err != nil {
		unix.Munmap(mem)
		return nil, err
	}
	// From here on the mapping stays until the thread is gone.
	w.fileTouch = &fileToucher{th: th, mem: mem, path: path}
	if err := waitAsleepOutside(th, 0); err != nil {
		return nil, err
	}
	return []any{"tid", th.tid}, nil
}

// waitAsleepOutside returns once th sleeps in the kernel outside any
// syscall (a page fault) after more than slept voluntary switches (a
// sleep begun since it had made that many), or fails if it finished
// instead. Like waitAsleepIn it polls /proc/self/task/TID/syscall, which
// shows -1 for a thread asleep outside a syscall and "running" for one on
// a CPU.
func waitAsleepOutside(th thread, slept uint64) error {
	path := fmt.Sprintf("/proc/self/task/%d/syscall", th.id())
	deadline := time.Now().Add(settleTimeout)
	for {
		b, err := os.ReadFile(path)
		if f := strings.Fields(string(b)); err == nil && len(f) > 0 && f[0] == "-1" {
			n, verr := voluntarySwitches(th.id())
			if verr == nil && n > slept {
				return nil
			}
		}
		if ret, err, ok := th.finished(); ok {
			return fmt.Errorf("thread %d went on instead of faulting: ret=%d err=%v", th.id(), ret, err)
		}
		if err != nil {
			return fmt.Errorf("reading thread state: %w", err)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("thread %d not asleep anew outside a syscall after %v: %s is %q", th.id(), settleTimeout, path, strings.TrimSpace(string(b)))
		}
		time.Sleep(pollInterval)
	}
}

// voluntarySwitches is how many times thread tid has gone to sleep.
func voluntarySwitches(tid int) (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/self/task/%d/status", tid))
	if err != nil {
		return 0, fmt.Errorf("reading thread %d's status: %w", tid, err)
	}
	const key = "\nvoluntary_ctxt_switches:"
	i := strings.Index(string(b), key)
	if i < 0 {
		return 0, fmt.Errorf("thread %d's status has no voluntary_ctxt_switches", tid)
	}
	f := strings.Fields(string(b[i+len(key):]))
	if len(f) == 0 {
		return 0, fmt.Errorf("thread %d's status: empty voluntary_ctxt_switches", tid)
	}
	return strconv.ParseUint(f[0], 10, 64)
}
