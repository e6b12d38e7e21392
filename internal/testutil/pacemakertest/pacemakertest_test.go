package pacemakertest

import (
	"context"
	"os"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"
)

// TestStopLeavesNothing starts and stops a cluster while goroutines
// locked to threads end (ending their threads, as a test that enters a
// namespace does): the daemons must survive that, and once stopped leave
// no process, cgroup, state or host file behind.
func TestStopLeavesNothing(t *testing.T) {
	Require(t)
	hostCIB := dirNames(t, "/var/lib/pacemaker/cib")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c, err := Start(ctx, Options{})
	if err != nil {
		t.Fatal(err)
	}
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			c.Stop()
		}
	})
	var wg sync.WaitGroup
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			runtime.LockOSThread()
			time.Sleep(time.Millisecond)
		}()
	}
	wg.Wait()
	st, err := c.Status(ctx)
	if err != nil || !st.Online(c.Node) {
		t.Fatalf("after threads ended: %v, node online %v\n%s", err, st.Online(c.Node), c.Logs())
	}
	for _, d := range []*daemon{c.corosync, c.pacemakerd} {
		select {
		case <-d.done:
			t.Fatalf("%s exited (%v) when a thread ended", d.cmd.Args[0], d.cmd.ProcessState)
		default:
		}
	}

	cg, dir := c.cg.Path, c.dir
	stopped = true
	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{cg, dir} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s left behind (%v)", p, err)
		}
	}
	if pid, name := running("corosync", "pacemakerd", "pacemaker-based", "pacemaker-execd", "pacemaker-attrd", "pacemaker-contr"); pid != 0 {
		t.Errorf("%s (pid %d) still runs", name, pid)
	}
	if got := dirNames(t, "/var/lib/pacemaker/cib"); !slices.Equal(got, hostCIB) {
		t.Errorf("the host's /var/lib/pacemaker/cib changed: %v, was %v", got, hostCIB)
	}
}

func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}
