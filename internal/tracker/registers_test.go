package tracker

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/stallmon/stallmon/internal/fdkind"
	"github.com/stallmon/stallmon/internal/testutil/fusehang"
	"github.com/stallmon/stallmon/internal/tracker/gen"
)

// Each fd a blocked syscall operates on is classified in the kernel from
// its inode: the snapshot names the kind and the file system without any
// lookup in /proc.
func TestFDKindsFromKernel(t *testing.T) {
	p := startWorkload(t)
	fs := fusehang.Mount(t, fusehang.Options{})
	m := attach(t, p.PID)
	pipe := do(t, p, "pipe-wait")
	dev := do(t, p, "uffd-hang")
	file := do(t, p, "read-file "+fs.File)

	s := snapshot(t, m)
	for _, c := range []struct {
		name string
		r    map[string]int
		kind fdkind.Kind
		fs   string
	}{
		{"pipe read", map[string]int{"tid": fieldInt(t, pipe, "tid"), "fd": fieldInt(t, pipe, "fd")}, fdkind.Pipe, "pipefs"},
		{"read of /dev/zero", map[string]int{"tid": fieldInt(t, dev, "tid"), "fd": fieldInt(t, dev, "fd")}, fdkind.Device, "devtmpfs"},
		{"FUSE file read", map[string]int{"tid": fieldInt(t, file, "tid"), "fd": fieldInt(t, file, "fd")}, fdkind.Regular, "fuse"},
	} {
		th := mustThread(t, s, c.r["tid"])
		if !th.InSyscall || th.Syscall != "read" || th.FD != c.r["fd"] || len(th.FDs) != 1 {
			t.Errorf("%s: thread %+v, want in read(%d) with one fd", c.name, th, c.r["fd"])
			continue
		}
		got := th.FDs[0]
		// /dev lives on devtmpfs, whose magic is tmpfs's.
		if c.fs == "devtmpfs" {
			c.fs = "tmpfs"
		}
		if got.Kind != c.kind || got.FS() != c.fs {
			t.Errorf("%s: fd %d classified %v on %q, want %v on %q", c.name, got.Num, got.Kind, got.FS(), c.kind, c.fs)
		}
		if th.Args[0] != uint64(c.r["fd"]) {
			t.Errorf("%s: first argument from the registers %d, want the fd %d", c.name, th.Args[0], c.r["fd"])
		}
	}
	fs.Release()
}

// writeWord plants an in-flight record in a thread's task storage, as a
// missed sys_exit would leave it.
func writeWord(t *testing.T, m *Tracker, tid int, nr int, age time.Duration) {
	t.Helper()
	if m.Object() == ObjectMinimal {
		writeMinimalWord(t, m, tid, wordAged(t, nr, age))
		return
	}
	fd, err := unix.PidfdOpen(tid, unix.PIDFD_THREAD)
	if errors.Is(err, unix.EINVAL) {
		// Not a missing privilege but a kernel before 6.9, where a
		// pidfd names only a thread group leader: the harness cannot
		// reach the thread's storage. The host suite (6.18) runs this.
		t.Skipf("planting a record needs pidfd_open(PIDFD_THREAD), Linux 6.9: %v", err)
	}
	if err != nil {
		t.Fatalf("pidfd of thread %d: %v", tid, err)
	}
	defer unix.Close(fd)
	word := wordAged(t, nr, age)
	if err := m.objs.Inflight.Update(uint32(fd), gen.StallmonInflight{Word: word}, ebpf.UpdateAny); err != nil {
		t.Fatalf("writing thread %d's in-flight record: %v", tid, err)
	}
}

// writeMinimalWord plants word in the minimal object's record of tid,
// which is keyed by tid: the thread must have one already (it entered a
// syscall since attach), whose start_time says it is this thread's.
func writeMinimalWord(t *testing.T, m *Tracker, tid int, word uint64) {
	t.Helper()
	var f gen.StallmonMinimalInflight
	if err := m.objs.Inflight.Lookup(uint32(tid), &f); err != nil {
		t.Fatalf("reading thread %d's in-flight record: %v", tid, err)
	}
	f.Word = word
	if err := m.objs.Inflight.Update(uint32(tid), f, ebpf.UpdateExist); err != nil {
		t.Fatalf("writing thread %d's in-flight record: %v", tid, err)
	}
}

// wordAged packs an in-flight word of syscall nr entered age ago.
func wordAged(t *testing.T, nr int, age time.Duration) uint64 {
	t.Helper()
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		t.Fatal(err)
	}
	start := uint64(ts.Nano() - int64(age))
	return (start>>tsShift)<<tsBitsOff | uint64(nr)
}

// A record the thread's saved registers belie is never shown as an
// in-flight syscall: the thread sleeps in read(2) of a pipe while its
// record claims getppid for a minute. The snapshot shows the read the
// registers name, counted from when it was first seen, and counts the
// stale record once.
func TestStaleWordBeliedByRegisters(t *testing.T) {
	p := startWorkload(t)
	m := attach(t, p.PID)
	r := do(t, p, "pipe-wait")
	tid, fd := fieldInt(t, r, "tid"), fieldInt(t, r, "fd")
	getppid, _ := SyscallNr("getppid")
	writeWord(t, m, tid, getppid, time.Minute)

	for range 3 {
		th := mustThread(t, snapshot(t, m), tid)
		if !th.InSyscall || th.Syscall != "read" || th.FD != fd || !th.SinceAttach || th.Elapsed > 10*time.Second {
			t.Fatalf("thread with a stale getppid record = %+v, want read(%d) since attach, not a minute old", th, fd)
		}
	}
	c, err := m.Counters()
	if err != nil {
		t.Fatal(err)
	}
	if c.StaleWords != 1 {
		t.Errorf("stale words counted %d, want 1 (one record, seen three times)", c.StaleWords)
	}
	do(t, p, "pipe-release")
}

// sys_enter counts a record it finds still set: an exit it missed.
func TestOverwrittenEntryCounted(t *testing.T) {
	p := startWorkload(t)
	m := attach(t, p.PID)
	tid := fieldInt(t, do(t, p, "busy"), "tid")
	before, err := m.Counters()
	if err != nil {
		t.Fatal(err)
	}
	nanosleep, _ := SyscallNr("nanosleep")
	deadline := time.Now().Add(5 * time.Second)
	for {
		// The loop's own getppid may be in flight, with its own record:
		// retry until a planted record is found set by the next entry.
		writeWord(t, m, tid, nanosleep, time.Second)
		c, err := m.Counters()
		if err != nil {
			t.Fatal(err)
		}
		if c.EntryOverwritten > before.EntryOverwritten {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no overwritten entry counted in 5s (counters %+v)", c)
		}
	}
	do(t, p, "busy-stop")
}

// A thread that returned from its syscall (while the tracker attached,
// say) and then computes in user space is never shown in a syscall, even
// with its record left behind: its registers no longer hold a syscall.
func TestComputingThreadNeverInSyscall(t *testing.T) {
	p := startWorkload(t)
	m := attach(t, p.PID)
	if m.Object() == ObjectMinimal {
		t.Skip("forges a record in task storage, which the minimal object, loaded where the probes find no task storage " +
			"in tracing programs, does not keep: its tid-keyed records are TestMinimalStaleRecordOfReusedTidIgnored's")
	}
	tid := fieldInt(t, do(t, p, "compute"), "tid")
	read, _ := SyscallNr("read")
	writeWord(t, m, tid, read, time.Minute)
	for range 20 {
		th := mustThread(t, snapshot(t, m), tid)
		if th.InSyscall {
			t.Fatalf("computing thread shown in a syscall: %+v", th)
		}
	}
	do(t, p, "compute-stop")
}

// The threads the kernel makes inside a process for io_uring are marked
// and never shown in a syscall: iou-sqp's registers hold a copy of its
// creator's io_uring_setup.
func TestIOUringThreadsAreKernelWorkers(t *testing.T) {
	p := startWorkload(t)
	m := attach(t, p.PID)
	r := do(t, p, "uring-idle")
	sq, waiter := fieldInt(t, r, "sqpoll_tid"), fieldInt(t, r, "tid")
	s := snapshot(t, m)
	if th := mustThread(t, s, sq); !th.Kernel || th.InSyscall {
		t.Errorf("iou-sqp thread %+v, want a kernel worker outside any syscall", th)
	}
	if th := mustThread(t, s, waiter); th.Kernel || !th.InSyscall || th.Syscall != "io_uring_enter" {
		t.Errorf("waiting thread %+v, want io_uring_enter", th)
	}
	do(t, p, "uring-stop")
}

// The records are copied byte for byte: bpf2go's mirror must have the C
// layout, with nothing binary.Size would count differently.
func TestRecordLayout(t *testing.T) {
	if got := binary.Size(gen.StallmonThreadRec{}); got != recSize {
		t.Fatalf("thread record: binary size %d, in-memory size %d", got, recSize)
	}
	want := gen.StallmonThreadRec{Tid: 7, Tgid: 5, State: 2, Word: 1 << 40, RegsNr: -1, Comm: [16]uint8{'x'}, OnCpu: 1}
	var buf bytes.Buffer
	if err := binary.Write(&buf, binary.NativeEndian, want); err != nil {
		t.Fatal(err)
	}
	if got := records(buf.Bytes()); len(got) != 1 || got[0] != want {
		t.Fatalf("records(%x) = %+v, want %+v", buf.Bytes(), got, want)
	}
}
