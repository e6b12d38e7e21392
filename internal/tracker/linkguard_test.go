package tracker

import (
	"errors"
	"fmt"
	"os"
	"testing"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/stallmon/stallmon/internal/testutil/linktamper"
	"github.com/stallmon/stallmon/internal/testutil/workloadtest"
)

// heldLinks returns the links of type typ that this process holds, as an
// outside root process finds them, and checks there are want of them.
func heldLinks(t *testing.T, typ string, want int) []linktamper.Link {
	t.Helper()
	all, err := linktamper.Held(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	links := linktamper.Of(all, typ)
	if len(links) != want {
		t.Fatalf("this process holds %d %s links, want %d (all: %+v)", len(links), typ, want, all)
	}
	return links
}

// takeLink opens link id as an outside process would, closed at cleanup.
func takeLink(t *testing.T, id uint32) int {
	t.Helper()
	fd, err := linktamper.Open(id)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	return fd
}

// A root process that takes the snapshot link by id and puts another task
// iterator program behind it (the kernel allows it) makes every snapshot
// lie: here, the target seems to have no thread at all. The next
// VerifyLinks names the link and the program, and keeps saying so after
// the original program is put back; a new attach starts clean.
func TestTamperIterProgramReplaced(t *testing.T) {
	p := startWorkload(t)
	m := attach(t, p.PID)
	snapshot(t, m)
	if err := m.VerifyLinks(); err != nil {
		t.Fatalf("untouched tracker: %v", err)
	}
	iter := heldLinks(t, "iter", 1)[0]
	// The process's own iterator, or, where the kernel cannot limit a
	// task iterator to one process (before 6.1), the host-wide one.
	walker := m.walkers.byPID[p.PID]
	if !m.walkers.filter {
		walker = m.walkers.host
	}
	if walker == nil {
		t.Fatalf("no iterator walked the target (filter %v)", m.walkers.filter)
	}
	own, err := walker.walkLink().Info()
	if err != nil {
		t.Fatal(err)
	}
	if uint32(own.ID) != iter.ID {
		t.Fatalf("fdinfo found iterator link %d, the tracker's is %d", iter.ID, own.ID)
	}

	fd := takeLink(t, iter.ID)
	decoy, err := linktamper.DecoyTaskIterator()
	if err != nil {
		t.Fatal(err)
	}
	defer decoy.Close()
	if err := linktamper.Replace(fd, decoy); err != nil {
		t.Fatalf("replacing the iterator's program: %v", err)
	}
	decoyInfo, err := decoy.Info()
	if err != nil {
		t.Fatal(err)
	}
	decoyID, _ := decoyInfo.ID()

	if s := snapshot(t, m); len(s.Threads) != 0 {
		t.Fatalf("snapshot through the decoy shows %d threads: the decoy did not run", len(s.Threads))
	}
	err = m.VerifyLinks()
	var te *TamperError
	if !errors.As(err, &te) {
		t.Fatalf("VerifyLinks after the replacement = %v, want a *TamperError", err)
	}
	wantChange := fmt.Sprintf("runs program %d, not the tracker's %d", decoyID, iter.ProgID)
	// The thread walk's link is a task iterator too, and named so.
	if te.Link != "task iterator" || te.LinkID != iter.ID || te.Change != wantChange {
		t.Fatalf("tamper error %+v, want task iterator, link %d, %q", te, iter.ID, wantChange)
	}
	t.Log(err)

	// Putting the tracker's own program back undoes nothing.
	orig, err := ebpf.NewProgramFromID(ebpf.ProgramID(iter.ProgID))
	if err != nil {
		t.Fatal(err)
	}
	defer orig.Close()
	if err := linktamper.Replace(fd, orig); err != nil {
		t.Fatalf("restoring the iterator's program: %v", err)
	}
	if len(snapshot(t, m).Threads) == 0 {
		t.Fatal("the restored program shows no thread")
	}
	if err := m.VerifyLinks(); !errors.As(err, new(*TamperError)) {
		t.Fatalf("VerifyLinks after the restore = %v, want the tamper error still", err)
	}

	fresh := attach(t, p.PID)
	if err := fresh.VerifyLinks(); err != nil {
		t.Fatalf("a new attach after tampering: %v", err)
	}
}

// The kernel refuses to detach raw tracepoint links and iterator links,
// and to put another program behind a raw tracepoint link, to any root
// process holding them: the tracker goes on seeing syscalls enter and
// return, and VerifyLinks finds nothing changed. This is why only the
// iterator's program (TestTamperIterProgramReplaced) can be changed.
func TestTamperDetachRefused(t *testing.T) {
	for _, tc := range []struct {
		name   string
		scope  func(pid int) Scope
		rawTPs int // sys_enter, sys_exit, sched_process_exit, and sched_process_fork for a tree
	}{
		{"pid", Process, 3},
		{"tree", Tree, 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := startWorkload(t)
			m := attachBy(t, tc.scope(p.PID))
			want := tc.rawTPs
			if m.Object() == ObjectMinimal {
				want++ // sched_process_exec: the minimal object's records are keyed by tid
			}
			decoy, err := linktamper.DecoyRawTracepoint()
			if err != nil {
				t.Fatal(err)
			}
			defer decoy.Close()
			for _, l := range heldLinks(t, "raw_tracepoint", want) {
				fd := takeLink(t, l.ID)
				if err := linktamper.Detach(fd); !errors.Is(err, unix.EOPNOTSUPP) {
					t.Errorf("BPF_LINK_DETACH on raw tracepoint link %d = %v, want EOPNOTSUPP", l.ID, err)
				}
				if err := linktamper.Replace(fd, decoy); !errors.Is(err, unix.EINVAL) {
					t.Errorf("BPF_LINK_UPDATE on raw tracepoint link %d = %v, want EINVAL", l.ID, err)
				}
			}
			iter := heldLinks(t, "iter", 1)[0]
			if err := linktamper.Detach(takeLink(t, iter.ID)); !errors.Is(err, unix.EOPNOTSUPP) {
				t.Errorf("BPF_LINK_DETACH on iterator link %d = %v, want EOPNOTSUPP", iter.ID, err)
			}
			if err := m.VerifyLinks(); err != nil {
				t.Fatalf("after refused detaches: %v", err)
			}

			// sys_enter still runs: a read entered now is tracked from
			// its entry; sys_exit too: once it returns it is gone.
			r := do(t, p, "pipe-wait")
			tid := fieldInt(t, r, "tid")
			th := mustThread(t, snapshot(t, m), tid)
			if !th.InSyscall || th.Syscall != "read" || th.SinceAttach || !th.Tracked {
				t.Fatalf("pipe reader after the detach attempts = %+v, want in read, tracked since its entry", th)
			}
			do(t, p, "pipe-release")
			if after, ok := snapshot(t, m).Thread(tid); ok && after.InSyscall && after.Entered == th.Entered {
				t.Fatalf("the returned read is still shown: %+v", after)
			}
			if err := m.VerifyLinks(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// What VerifyLinks adds to every poll: one bpf(2) call per link.
func BenchmarkVerifyLinks(b *testing.B) {
	p := workloadtest.Start(b)
	m := attachBy(b, Process(p.PID))
	for b.Loop() {
		if err := m.VerifyLinks(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(m.guard.links)), "ns/link")
}
