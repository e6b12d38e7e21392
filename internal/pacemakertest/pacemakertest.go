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
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/stallmon/stallmon/cgroup"
	"github.com/stallmon/stallmon/internal/privtest"
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

func (c *Cluster) path(name string) string { return filepath.Join(c.dir, name) }

// ocfResourceDir is where Pacemaker looks for OCF agents, one directory
// per provider (compiled in: no setting moves it).
const ocfResourceDir = "/usr/lib/ocf/resource.d"

// ocfMounts adds to the mount script the lines that show the cluster a
// copy of ocfResourceDir with the installed providers bound in, plus
// extra ones.
func (c *Cluster) ocfMounts(script string, extra map[string]string) (string, error) {
	dir := c.path("ocf")
	if err := os.Mkdir(dir, 0o755); err != nil {
		return "", err
	}
	binds := map[string]string{}
	entries, err := os.ReadDir(ocfResourceDir)
	if err != nil {
		return "", fmt.Errorf("installed OCF agents: %w", err)
	}
	for _, e := range entries {
		if e.IsDir() {
			binds[e.Name()] = filepath.Join(ocfResourceDir, e.Name())
		}
	}
	for name, src := range extra {
		if _, ok := binds[name]; ok {
			return "", fmt.Errorf("OCF provider %s is installed already", name)
		}
		abs, err := filepath.Abs(src)
		if err != nil {
			return "", err
		}
		binds[name] = abs
	}
	for name, src := range binds {
		if err := os.Mkdir(filepath.Join(dir, name), 0o755); err != nil {
			return "", err
		}
		script += fmt.Sprintf("mount --bind %s %s\n", shellQuote(src), shellQuote(filepath.Join(dir, name)))
	}
	return script + fmt.Sprintf("mount --rbind %s %s\n", shellQuote(dir), ocfResourceDir), nil
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// prepare writes the configuration and the state directories the daemons
// see in place of the host's.
func (c *Cluster) prepare() error {
	u, err := user.Lookup("hacluster")
	if err != nil {
		return fmt.Errorf("pacemaker's user: %w", err)
	}
	g, err := user.LookupGroup("haclient")
	if err != nil {
		return fmt.Errorf("pacemaker's group: %w", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(g.Gid)
	for _, d := range []string{"lib-pacemaker", "lib-corosync"} {
		if err := os.Mkdir(c.path(d), 0o755); err != nil {
			return err
		}
	}
	for _, d := range []string{"cib", "pengine", "blackbox", "cores"} {
		p := filepath.Join(c.path("lib-pacemaker"), d)
		if err := os.Mkdir(p, 0o750); err != nil {
			return err
		}
		if err := os.Chown(p, uid, gid); err != nil {
			return err
		}
	}
	conf := fmt.Sprintf(`totem {
	version: 2
	cluster_name: stallmon-test
	crypto_cipher: none
	crypto_hash: none
}
logging {
	to_stderr: yes
	to_logfile: no
	to_syslog: no
}
quorum {
	provider: corosync_votequorum
}
nodelist {
	node {
		name: %s
		nodeid: 1
		ring0_addr: 127.0.0.1
	}
}
`, c.Node)
	if err := os.WriteFile(c.path("corosync.conf"), []byte(conf), 0o644); err != nil {
		return err
	}
	cib := filepath.Join(c.path("lib-pacemaker"), "cib", "cib.xml")
	if err := os.WriteFile(cib, []byte(initialCIB), 0o600); err != nil {
		return err
	}
	return os.Chown(cib, uid, gid)
}

// initialCIB is what the test cluster starts from: no resources, no
// fencing, and a short wait for peers that will never come.
const initialCIB = `<cib validate-with="pacemaker-3.9" epoch="1" num_updates="0" admin_epoch="0">
  <configuration>
    <crm_config>
      <cluster_property_set id="stallmon-test">
        <nvpair id="stallmon-test-stonith-enabled" name="stonith-enabled" value="false"/>
        <nvpair id="stallmon-test-dc-deadtime" name="dc-deadtime" value="2s"/>
      </cluster_property_set>
    </crm_config>
    <nodes/>
    <resources/>
    <constraints/>
  </configuration>
  <status/>
</cib>
`

// spawn starts a daemon in the cluster's cgroup, its output in the file
// log. Should the test binary die, Pdeathsig takes the daemon with it;
// the next start sweeps what they forked.
//
// Pdeathsig fires when the thread that forked the daemon ends, not the
// process, and Go ends a thread when a goroutine locked to it returns (a
// test that enters a namespace does): so the daemons are forked from a
// thread of the cluster's own, which ends only once Stop stopped them.
func (c *Cluster) spawn(log string, env []string, name string, args ...string) (*daemon, error) {
	if c.forker == nil {
		c.forker = make(chan func())
		go func() {
			runtime.LockOSThread()
			for f := range c.forker {
				f()
			}
		}()
	}
	var d *daemon
	var err error
	done := make(chan struct{})
	c.forker <- func() { d, err = c.fork(log, env, name, args...); close(done) }
	<-done
	return d, err
}

func (c *Cluster) fork(log string, env []string, name string, args ...string) (*daemon, error) {
	out, err := os.Create(c.path(log))
	if err != nil {
		return nil, err
	}
	defer out.Close()
	cg, err := os.Open(c.cg.Path)
	if err != nil {
		return nil, err
	}
	defer cg.Close()
	cmd := exec.Command(name, args...)
	cmd.Dir = c.dir
	cmd.Stdout, cmd.Stderr = out, out
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: int(cg.Fd()), Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	d := &daemon{cmd: cmd, done: make(chan struct{})}
	go func() { cmd.Wait(); close(d.done) }()
	return d, nil
}

// waitFor polls ready until it succeeds, d exits, or ctx ends.
func (c *Cluster) waitFor(ctx context.Context, what string, d *daemon, ready func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	for {
		err := ready(ctx)
		if err == nil {
			return nil
		}
		select {
		case <-d.done:
			return fmt.Errorf("waiting for %s: %s exited (%v)\n%s", what, d.cmd.Args[0], d.cmd.ProcessState, c.Logs())
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w (last: %v)\n%s", what, ctx.Err(), err, c.Logs())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Stop stops pacemakerd (which stops the resources and its daemons), then
// corosync, kills whatever is left in the cgroup, and removes the
// cgroup, the state directories and the lock.
func (c *Cluster) Stop() error {
	var errs []error
	var pids []int
	if c.cg.Path != "" {
		pids, _ = c.cg.Procs()
	}
	// Dead already if something killed them: their rings are left.
	for _, d := range []*daemon{c.corosync, c.pacemakerd} {
		if d != nil {
			pids = append(pids, d.cmd.Process.Pid)
		}
	}
	for _, s := range []struct {
		d       *daemon
		timeout time.Duration
	}{{c.pacemakerd, pacemakerdStop}, {c.corosync, corosyncStop}} {
		if s.d == nil {
			continue
		}
		s.d.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-s.d.done:
		case <-time.After(s.timeout):
			errs = append(errs, fmt.Errorf("%s did not stop within %v of SIGTERM", s.d.cmd.Args[0], s.timeout))
		}
	}
	if c.cg.Path != "" {
		if err := drain(c.cg); err != nil {
			errs = append(errs, err)
		}
	}
	removeShm(pids)
	if c.forker != nil {
		close(c.forker)
	}
	if c.dir != "" {
		if len(errs) > 0 {
			errs = append(errs, errors.New(c.Logs()))
		}
		if err := os.RemoveAll(c.dir); err != nil {
			errs = append(errs, err)
		}
	}
	if c.lock != nil {
		c.lock.Close()
	}
	return errors.Join(errs...)
}

// drain kills what is left in cg and removes it; anything left is an
// error: a daemon that did not stop when told.
func drain(cg cgroup.Dir) error {
	var errs []error
	if pids, _ := cg.Procs(); len(pids) > 0 {
		errs = append(errs, fmt.Errorf("processes left in %s after the cluster stopped, killed: %v", cg.Path, pids))
		if err := cg.Kill(); err != nil {
			errs = append(errs, err)
		}
	}
	deadline := time.Now().Add(cgroupDrainWait)
	for {
		populated, err := cg.Populated()
		if err != nil || !populated {
			break
		}
		if time.Now().After(deadline) {
			errs = append(errs, fmt.Errorf("%s still populated %v after cgroup.kill", cg.Path, cgroupDrainWait))
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := cg.Remove(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// sweep removes the cgroups of test clusters whose test binary died: the
// lock is held, so no live test owns one.
func sweep(root string) error {
	entries, err := os.ReadDir(root)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if !e.IsDir() || !strings.HasPrefix(e.Name(), cgroupPrefix) {
			continue
		}
		cg := cgroup.Dir{Path: filepath.Join(root, e.Name())}
		pids, _ := cg.Procs()
		drain(cg)
		removeShm(pids)
	}
	return nil
}

// removeShm removes the shared-memory rings (/dev/shm/qb-...) that libqb
// names after the processes of a connection: a daemon that was killed
// leaves its own behind.
func removeShm(pids []int) {
	if len(pids) == 0 {
		return
	}
	ours := map[string]bool{}
	for _, p := range pids {
		ours[strconv.Itoa(p)] = true
	}
	entries, _ := os.ReadDir("/dev/shm")
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), "qb-") {
			continue
		}
		for _, f := range strings.Split(e.Name(), "-") {
			if ours[f] {
				os.RemoveAll(filepath.Join("/dev/shm", e.Name()))
				break
			}
		}
	}
}

// running returns a process with one of the names, from /proc.
func running(names ...string) (int, string) {
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "comm"))
		if err != nil {
			continue
		}
		comm := strings.TrimSpace(string(b))
		for _, n := range names {
			if comm == n {
				return pid, n
			}
		}
	}
	return 0, ""
}

// lock takes an exclusive flock on path (a directory the package owns,
// so no file is created), polling until ctx ends.
func lock(ctx context.Context, path string) (*os.File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("pacemaker's state directory: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, lockTimeout)
	defer cancel()
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return f, nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("locking %s: %w", path, err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("another test binary holds the cluster (lock on %s): %w", path, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Logs returns the tails of the daemons' logs, for a failing test.
func (c *Cluster) Logs() string {
	var b strings.Builder
	for _, name := range []string{"corosync.log", "pacemakerd.log", "pacemaker.log"} {
		data, err := os.ReadFile(c.path(name))
		if err != nil {
			continue
		}
		lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
		lines = lines[max(0, len(lines)-40):]
		fmt.Fprintf(&b, "--- %s (last %d lines)\n%s\n", name, len(lines), strings.Join(lines, "\n"))
	}
	return b.String()
}

// Run runs one of the cluster's command-line tools, bounded by ctx, and
// returns its standard output; a failure carries its standard error.
func Run(ctx context.Context, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = time.Second
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}
