package tracker

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"

	"github.com/stallmon/stallmon/internal/testutil/privtest"
	"github.com/stallmon/stallmon/internal/tracker/gen"
)

// the minimal object keys records by tid and tells
// a reused tid by start_time (bpf/maps.h inflight_get). No other test
// plants a record of another thread's start_time: with the check gone, a
// new thread that inherits a dead thread's tid inherits its in-flight
// word too, and a thread that has waited a moment in a read is judged
// to have waited a minute (a wrong kill at the deadline). This pins it.
func TestMinimalStaleRecordOfReusedTidIgnored(t *testing.T) {
	privtest.Require(t)
	p := startWorkload(t)
	m := attachWith(t, p.PID, Options{BPFFeatures: MinimalFeatures})
	tid := fieldInt(t, do(t, p, "pipe-wait"), "tid")
	defer do(t, p, "pipe-release")
	read, _ := SyscallNr("read")
	stale := gen.StallmonMinimalInflight{Word: wordAged(t, read, time.Minute), StartTime: 12345}
	if err := m.objs.Inflight.Update(uint32(tid), stale, ebpf.UpdateAny); err != nil {
		t.Fatalf("planting a dead thread's record under tid %d: %v", tid, err)
	}
	for range 5 {
		th := mustThread(t, snapshot(t, m), tid)
		if th.Elapsed > 30*time.Second {
			t.Fatalf("thread %d, in a read for a moment, took the age of a record another thread (start_time 12345) left under its tid: %+v", tid, th)
		}
	}
}

// a non-leader thread that calls execve takes the
// leader's tid and start_time (de_thread); its own record, keyed by its
// old tid, is never deleted: no thread exits under that tid (the old
// leader, which takes it, is released without passing
// sched_process_exit again). Task storage (the full object) goes with the
// task; the minimal object's preallocated hash keeps one dead record per
// such exec, until 32,768 fill it and every new thread is unrecorded.
func TestMinimalExecFromThreadLeaksNoRecord(t *testing.T) {
	privtest.Require(t)
	py, err := exec.LookPath("/usr/bin/python3")
	if err != nil {
		t.Skip("needs /usr/bin/python3")
	}
	const script = `import threading,os,sys,time
sys.stdin.readline()
def run():
    time.sleep(0.05)
    os.execv("/bin/sleep", ["sleep", "30"])
threading.Thread(target=run).start()
time.sleep(30)`
	cmd := exec.Command(py, "-c", script)
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	time.Sleep(300 * time.Millisecond) // python up, waiting on stdin
	m := attachWith(t, cmd.Process.Pid, Options{BPFFeatures: MinimalFeatures})
	fmt.Fprintln(in, "go")
	deadline := time.Now().Add(5 * time.Second)
	for {
		comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", cmd.Process.Pid))
		if strings.TrimSpace(string(comm)) == "sleep" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the python thread did not exec sleep: comm %q", comm)
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond)
	var key uint32
	var rec gen.StallmonMinimalInflight
	var dead []uint32
	for it := m.objs.Inflight.Iterate(); it.Next(&key, &rec); {
		if _, err := os.Stat(fmt.Sprintf("/proc/%d/task/%d", cmd.Process.Pid, key)); err != nil {
			dead = append(dead, key)
		}
	}
	if len(dead) > 0 {
		t.Errorf("after a thread of process %d exec'd, the minimal record map keeps %d records of threads that no longer exist (tids %v): "+
			"one leaked per exec from a non-leader thread, until the map is full and every new thread goes unrecorded",
			cmd.Process.Pid, len(dead), dead)
	}
}
