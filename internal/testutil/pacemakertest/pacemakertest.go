// Package pacemakertest runs a one-node cluster of corosync and Pacemaker
// from Debian's packages for a test binary.
//
// The cluster stack keeps its state at fixed paths (/var/lib/pacemaker,
// /var/lib/corosync, /run) and talks over abstract unix sockets, which are
// one per machine: only one cluster can run at a time. So the daemons run
// in a mount namespace of their own where temporary directories are bound
// over those paths (nothing of the host's is read or written, and a test
// killed halfway leaves no CIB behind), in a cgroup of their own (so every
// process they fork, even one that left their session, is found and
// killed at the end), and a lock taken on /var/lib/pacemaker keeps two
// test binaries from starting theirs at once.
//
// Starting takes a few seconds, not the ~25 of Debian's default: the CIB
// the cluster starts from sets dc-deadtime to 2s (a lone node otherwise
// waits 20s for peers before it elects itself) and turns STONITH off
// (there is no fencing device on a test machine).
package pacemakertest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stallmon/stallmon/internal/cgroup"
	"github.com/stallmon/stallmon/internal/testutil/privtest"
)

// NodeName is the cluster's only node.
const NodeName = "stallmon-test"

// Commands are the programs the cluster and its tests run; make deps-test
// installs them (corosync, pacemaker, pacemaker-cli-utils; unshare and
// nsenter come with util-linux).
var Commands = []string{
	"corosync", "corosync-cfgtool", "pacemakerd",
	"attrd_updater", "cibadmin", "crm_attribute", "crm_mon", "crm_resource",
	"unshare", "nsenter",
}

// cgroupPrefix names the cgroups of test clusters; one left by a test
// binary that died is swept by the next start.
const cgroupPrefix = "stallmon-pacemakertest-"

// Timeouts of the cluster's life cycle. Start is ~4s on an idle machine.
const (
	lockTimeout     = 4 * time.Minute
	startTimeout    = 90 * time.Second
	pacemakerdStop  = 90 * time.Second
	corosyncStop    = 20 * time.Second
	cgroupDrainWait = 10 * time.Second
)

// Require skips t unless it runs as root with every command of Commands
// installed (fails it in strict mode).
func Require(t testing.TB) {
	t.Helper()
	privtest.Require(t)
	for _, c := range Commands {
		privtest.RequireCommand(t, c)
	}
}

// Cluster is a running one-node cluster.
type Cluster struct {
	Node string
	dir  string
	cg   cgroup.Dir
	lock *os.File

	corosync, pacemakerd *daemon
	// forker runs on the thread the daemons are forked from.
	forker chan func()
}

type daemon struct {
	cmd  *exec.Cmd
	done chan struct{}
}

var shared struct {
	mu      sync.Mutex
	c       *Cluster
	err     error
	started bool
}

// Shared returns the test binary's cluster, starting it on the first
// call. The test binary's TestMain must call StopShared after m.Run.
func Shared(t testing.TB) *Cluster {
	t.Helper()
	Require(t)
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if !shared.started {
		shared.started = true
		ctx, cancel := context.WithTimeout(context.Background(), lockTimeout+startTimeout)
		defer cancel()
		t0 := time.Now()
		shared.c, shared.err = Start(ctx, Options{})
		if shared.err == nil {
			t.Logf("pacemakertest: cluster online in %v", time.Since(t0).Round(time.Millisecond))
		}
	}
	if shared.err != nil {
		t.Fatalf("pacemakertest: %v", shared.err)
	}
	return shared.c
}

// Options add to the cluster.
type Options struct {
	// OCFProviders maps an OCF provider name to a directory of resource
	// agents, seen by the cluster (only) as
	// /usr/lib/ocf/resource.d/NAME, beside the installed providers.
	OCFProviders map[string]string
}

// New starts a cluster for t alone; t's end stops it.
func New(t testing.TB, opts Options) *Cluster {
	t.Helper()
	Require(t)
	ctx, cancel := context.WithTimeout(context.Background(), lockTimeout+startTimeout)
	defer cancel()
	t0 := time.Now()
	c, err := Start(ctx, opts)
	if err != nil {
		t.Fatalf("pacemakertest: %v", err)
	}
	t.Logf("pacemakertest: cluster online in %v", time.Since(t0).Round(time.Millisecond))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("pacemakertest: the cluster's logs\n%s", c.Logs())
		}
		if err := c.Stop(); err != nil {
			t.Errorf("pacemakertest: stopping the cluster: %v", err)
		}
	})
	return c
}

// StopShared stops the cluster Shared started, if any.
func StopShared() error {
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.c == nil {
		return nil
	}
	c := shared.c
	shared.c = nil
	return c.Stop()
}

// Start runs corosync and pacemakerd and returns once the node is online
// and elected DC. Stop must be called, also after an error of a test.
func Start(ctx context.Context, opts Options) (c *Cluster, err error) {
	c = &Cluster{Node: NodeName}
	if c.lock, err = lock(ctx, "/var/lib/pacemaker"); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			if serr := c.Stop(); serr != nil {
				err = fmt.Errorf("%w (and stopping: %v)", err, serr)
			}
			c = nil
		}
	}()
	root, err := cgroup.Root()
	if err != nil {
		return c, err
	}
	if err := sweep(root); err != nil {
		return c, err
	}
	if pid, name := running("corosync", "pacemakerd"); pid != 0 {
		return c, fmt.Errorf("%s already runs (pid %d), not started by a test: stop it (systemctl stop pacemaker corosync), one cluster stack runs per machine", name, pid)
	}
	if c.dir, err = os.MkdirTemp("", "stallmon-pacemakertest-"); err != nil {
		return c, err
	}
	if err := c.prepare(); err != nil {
		return c, err
	}
	if c.cg, err = cgroup.Mkdir(root, cgroupPrefix+strconv.Itoa(os.Getpid())); err != nil {
		return c, err
	}
	// corosync starts the mount namespace; pacemakerd joins it.
	mounts := `mount --bind "$1" /var/lib/pacemaker
mount --bind "$2" /var/lib/corosync
mount -t tmpfs -o mode=0755 stallmon-pacemakertest /run
`
	if len(opts.OCFProviders) > 0 {
		if mounts, err = c.ocfMounts(mounts, opts.OCFProviders); err != nil {
			return c, err
		}
	}
	mounts += `exec corosync -f -c "$3"`
	if c.corosync, err = c.spawn("corosync.log", nil, "unshare", "--mount", "--propagation", "private", "--",
		"sh", "-ec", mounts, "sh", c.path("lib-pacemaker"), c.path("lib-corosync"), c.path("corosync.conf")); err != nil {
		return c, err
	}
	if err := c.waitFor(ctx, "corosync to answer", c.corosync, func(ctx context.Context) error {
		_, err := Run(ctx, "corosync-cfgtool", "-s")
		return err
	}); err != nil {
		return c, err
	}
	env := []string{"PCMK_logfile=" + c.path("pacemaker.log"), "PCMK_logfacility=none"}
	if c.pacemakerd, err = c.spawn("pacemakerd.log", env, "nsenter", "--target", strconv.Itoa(c.corosync.cmd.Process.Pid),
		"--mount", "--", "pacemakerd"); err != nil {
		return c, err
	}
	if err := c.waitFor(ctx, "the node to be online and DC", c.pacemakerd, func(ctx context.Context) error {
		st, err := c.Status(ctx)
		if err != nil {
			return err
		}
		if !st.Online(c.Node) || !st.Summary.DC.Present {
			return fmt.Errorf("node %s not online with a DC yet", c.Node)
		}
		return nil
	}); err != nil {
		return c, err
	}
	return c, nil
}
