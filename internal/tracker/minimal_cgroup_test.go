package tracker

import (
	"testing"

	"github.com/stallmon/stallmon/internal/cgroup"
	"github.com/stallmon/stallmon/internal/testutil/cgrouptest"
	"github.com/stallmon/stallmon/internal/testutil/privtest"
)

// the minimal object's syscall programs filter by
// cgroup without bpf_get_current_ancestor_cgroup_id, reading the current
// task's ancestor themselves (target.h current_in_target_cgroup; before
// 6.0 through cgroup->ancestor_ids). The cgroup tests check the
// iterator's filter only: this checks that a thread of a process one
// level below the watched cgroup gets an in-flight record when it enters
// a syscall after attach (Tracked, in read, not only "since attach").
func TestMinimalCgroupFilterRecordsDescendant(t *testing.T) {
	privtest.Require(t)
	cg := cgrouptest.New(t)
	child, err := cgroup.Mkdir(cg.Path, "child")
	if err != nil {
		t.Fatal(err)
	}
	p := startWorkload(t)
	if err := child.Add(p.PID); err != nil {
		t.Fatal(err)
	}
	m, err := Attach(Cgroup(cg.Path), nil, Options{BPFFeatures: MinimalFeatures})
	if err != nil {
		t.Fatalf("attaching the minimal object: %v", err)
	}
	defer m.Close()
	tid := fieldInt(t, do(t, p, "pipe-wait"), "tid")
	defer p.Do("pipe-release")
	th := mustThread(t, snapshot(t, m), tid)
	if !th.Tracked || !th.InSyscall || th.Syscall != "read" || th.SinceAttach || th.Unrecorded != nil {
		t.Errorf("thread of a process in %s, in a read entered after attach = %+v; want a recorded read (the syscall programs' cgroup filter missed it)", child.Path, th)
	}
}
