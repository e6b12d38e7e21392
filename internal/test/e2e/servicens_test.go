package e2e

import (
	"context"
	"net"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/stallmon/stallmon/internal/testutil/nettest"
	"github.com/stallmon/stallmon/internal/workload"
)

// serviceNS is a network namespace of the test's own, loopback up, where
// the service under test listens and its clients connect from; stallmon
// stays in the host's. So a test's ports never meet another's, and the
// agent is shown to read the service's sockets whatever namespace they
// belong to (the iterator walks the process's files, not the agent's
// namespace). Removed, with anything left inside, when the test ends.
type serviceNS string

func newServiceNS(t *testing.T) serviceNS {
	t.Helper()
	return serviceNS(nettest.Namespace(t))
}

// do runs fn on a thread inside the namespace: sockets it opens and
// processes it starts belong to the namespace.
func (ns serviceNS) do(t *testing.T, fn func() error) {
	t.Helper()
	if err := nettest.InNetns(string(ns), fn); err != nil {
		t.Fatal(err)
	}
}

// dial connects to addr from inside the namespace.
func (ns serviceNS) dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	var c net.Conn
	ns.do(t, func() error {
		var err error
		c, err = net.DialTimeout("tcp4", addr, 5*time.Second)
		return err
	})
	return c
}

// startWorkload starts the test workload inside the namespace.
func (ns serviceNS) startWorkload(t *testing.T) *workload.Proc {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	var w *workload.Proc
	ns.do(t, func() error {
		w, err = workload.Start(context.Background(), exe, nil, nil)
		return err
	})
	t.Cleanup(func() { w.Stop() })
	ns.holds(t, w.PID)
	return w
}

// start starts cmd inside the namespace.
func (ns serviceNS) start(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	ns.do(t, cmd.Start)
	ns.holds(t, cmd.Process.Pid)
}

// output runs a client command inside the namespace.
func (ns serviceNS) output(ctx context.Context, name string, args ...string) ([]byte, error) {
	var out []byte
	err := nettest.InNetns(string(ns), func() error {
		var err error
		out, err = exec.CommandContext(ctx, name, args...).CombinedOutput()
		return err
	})
	return out, err
}

// holds checks that pid lives in the namespace and this test (and so the
// stallmon it starts) does not.
func (ns serviceNS) holds(t *testing.T, pid int) {
	t.Helper()
	var want, its, own unix.Stat_t
	if err := unix.Stat("/run/netns/"+string(ns), &want); err != nil {
		t.Fatal(err)
	}
	if err := unix.Stat("/proc/"+strconv.Itoa(pid)+"/ns/net", &its); err != nil {
		t.Fatal(err)
	}
	if err := unix.Stat("/proc/"+strconv.Itoa(os.Getpid())+"/ns/net", &own); err != nil {
		t.Fatal(err)
	}
	if its.Ino != want.Ino || own.Ino == want.Ino {
		t.Fatalf("process %d in network namespace %d, want %s's (%d), this test's being %d", pid, its.Ino, ns, want.Ino, own.Ino)
	}
}
