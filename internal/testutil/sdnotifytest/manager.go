package sdnotifytest

import (
	"bufio"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/stallmon/stallmon/internal/cgroup"
	"github.com/stallmon/stallmon/internal/testutil/cgrouptest"
	"github.com/stallmon/stallmon/internal/testutil/privtest"
)

// SystemdBinary is Debian's service manager.
const SystemdBinary = "/lib/systemd/systemd"

// Manager is Debian's systemd, booted as PID 1 of new pid, mount, UTS,
// IPC and network namespaces, as a container's init: systemd is not PID 1
// on the test machines, but it runs as the init of a container, and there
// it handles the notify protocol, NotifyAccess=, Restart= and
// WatchdogSignal= as on any host. It loads only the units of one
// directory ($SYSTEMD_UNIT_PATH) and starts one of them; it sees the
// host's file systems as they were mounted when it started, and runs in
// cgroups of its own below the test's.
type Manager struct {
	// Init is its PID 1, as this process sees it.
	Init int
	// Socket is its notify socket, reached from here through /proc.
	Socket  string
	console *console
	done    chan struct{}
	code    int
}

// StartManager boots systemd with the units in unitDir and starts unit;
// it returns once unit has a main process. The manager and everything it
// started are killed when the test ends.
func StartManager(t testing.TB, unitDir, unit string) *Manager {
	t.Helper()
	privtest.Require(t)
	privtest.RequireFile(t, SystemdBinary, "Debian's systemd package")
	unshare := privtest.RequireCommand(t, "unshare")
	privtest.RequireCommand(t, "nsenter")
	privtest.RequireCommand(t, "systemctl")

	// The manager's console is a pseudo-terminal we read: a container's
	// init logs to /dev/console, and only to a terminal. /proc/sys is
	// read-only to it, as container managers make it: an init raises
	// host-wide limits there (fs.file-max) otherwise.
	console := openConsole(t)
	cg := cgrouptest.New(t)
	cgfd, err := os.Open(cg.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer cgfd.Close()
	// On a hybrid host systemd mirrors its cgroups into the named v1
	// hierarchy, at the same path as in v2: that directory is ours too.
	root, err := cgroup.Root()
	if err != nil {
		t.Fatal(err)
	}
	v1 := namedSystemdV1(t, strings.TrimPrefix(cg.Path, root))
	script := `set -e
if [ -n "$V1" ]; then echo $$ > "$V1/cgroup.procs"; fi
exec "$UNSHARE" --pid --fork --mount --uts --ipc --net --mount-proc --propagation private \
	/bin/sh -c 'set -e
		mount --bind "$CONSOLE" /dev/console
		mount --bind /proc/sys /proc/sys
		mount -o remount,bind,ro /proc/sys
		exec "$SYSTEMD" --unit="$UNIT" --show-status=no'`
	cmd := exec.Command("/bin/sh", "-c", script)
	cmd.Env = []string{
		"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "container=stallmon-test",
		"SYSTEMD_UNIT_PATH=" + unitDir, "V1=" + v1, "UNSHARE=" + unshare,
		"CONSOLE=" + console.pts, "SYSTEMD=" + SystemdBinary, "UNIT=" + unit,
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: int(cgfd.Fd())}
	var stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	m := &Manager{console: console, done: make(chan struct{})}
	go func() {
		// unshare --fork exits with its child's status: the manager's.
		cmd.Wait()
		m.code = cmd.ProcessState.ExitCode()
		close(m.done)
	}()
	t.Cleanup(func() {
		// SIGKILL to a pid namespace's init ends every process in it.
		if m.Init == 0 {
			m.Init = childOf(cmd.Process.Pid)
		}
		if m.Init != 0 {
			syscall.Kill(m.Init, syscall.SIGKILL)
		} else {
			cmd.Process.Kill()
		}
		// unshare ends once its child, the init, has reaped the whole
		// namespace.
		<-m.done
		waitEmpty(t, cg)
		if t.Failed() {
			t.Logf("systemd console:\n%s\nunshare: %s", m.Log(), stderr.String())
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for m.Init == 0 {
		if m.Init = childOf(cmd.Process.Pid); m.Init != 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("systemd did not start: %s", stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	m.Socket = fmt.Sprintf("/proc/%d/root/run/systemd/notify", m.Init)
	for {
		if _, err := os.Stat(m.Socket); err == nil {
			if pid, err := strconv.Atoi(m.tryShow(unit, "MainPID")); err == nil && pid != 0 {
				return m
			}
		}
		if code, exited := m.Exited(0); exited {
			t.Fatalf("systemd exited %d before starting %s:\n%s\n%s", code, unit, m.Log(), stderr.String())
		}
		if time.Now().After(deadline) {
			t.Fatalf("systemd did not start %s within 20s:\n%s", unit, m.Log())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// childOf is the only child of unshare --fork, the namespace's init; 0
// before it forked.
func childOf(pid int) int {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
	if f := strings.Fields(string(b)); len(f) == 1 {
		child, _ := strconv.Atoi(f[0])
		return child
	}
	return 0
}

// namedSystemdV1 makes the directory rel in the named v1 "systemd"
// hierarchy, removed with what the manager made below it when the test
// ends, if the host mounts that hierarchy; "" otherwise.
func namedSystemdV1(t testing.TB, rel string) string {
	t.Helper()
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	root := ""
	for sc.Scan() {
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		pf, qf := strings.Fields(pre), strings.Fields(post)
		if ok && len(pf) >= 5 && len(qf) >= 3 && qf[0] == "cgroup" && pf[3] == "/" &&
			slices.Contains(strings.Split(qf[2], ","), "name=systemd") {
			root = pf[4]
			break
		}
	}
	if root == "" {
		return ""
	}
	dir := filepath.Join(root, rel)
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// Children first; each is empty once the manager is gone.
		var dirs []string
		filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		for _, d := range slices.Backward(dirs) {
			if err := os.Remove(d); err != nil {
				t.Errorf("removing %s: %v", d, err)
			}
		}
	})
	return dir
}

// Show is a property of unit, from systemctl show inside the manager's
// namespaces.
func (m *Manager) Show(t testing.TB, unit, prop string) string {
	t.Helper()
	out, err := m.systemctl("show", "-P", prop, unit)
	if err != nil {
		t.Fatalf("systemctl show -P %s %s: %v: %s", prop, unit, err, out)
	}
	return out
}

func (m *Manager) tryShow(unit, prop string) string {
	out, _ := m.systemctl("show", "-P", prop, unit)
	return out
}

func (m *Manager) systemctl(args ...string) (string, error) {
	cmd := exec.Command("nsenter", append([]string{"-t", strconv.Itoa(m.Init), "-m", "-p", "--", "systemctl"}, args...)...)
	out, err := cmd.CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// HostPID translates a pid of the manager's namespace to this one's.
func (m *Manager) HostPID(t testing.TB, nspid int) int {
	t.Helper()
	ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", m.Init))
	if err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if l, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", pid)); err != nil || l != ns {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		if err != nil {
			continue
		}
		for line := range strings.Lines(string(b)) {
			if v, ok := strings.CutPrefix(line, "NSpid:"); ok {
				f := strings.Fields(v)
				if len(f) > 0 && f[len(f)-1] == strconv.Itoa(nspid) {
					return pid
				}
			}
		}
	}
	t.Fatalf("no process with pid %d in the manager's namespace", nspid)
	return 0
}

// Exited waits up to timeout for the manager to exit, and returns its
// exit status; false if it is still running.
func (m *Manager) Exited(timeout time.Duration) (int, bool) {
	select {
	case <-m.done:
		return m.code, true
	case <-time.After(timeout):
		return 0, false
	}
}

// Log is what the manager wrote to its console so far.
func (m *Manager) Log() string { return m.console.text() }

// waitEmpty waits for the last of the manager's processes to leave its
// cgroup, so that the cgroup can be removed.
func waitEmpty(t testing.TB, cg cgroup.Dir) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		populated, err := cg.Populated()
		if err != nil || !populated {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("the manager's cgroup %s still populated 10s after it was killed", cg.Path)
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// console is a pseudo-terminal whose output is kept.
type console struct {
	pts   string
	mu    sync.Mutex
	buf   strings.Builder
	ptm   *os.File
	slave *os.File
	done  chan struct{}
}

func openConsole(t testing.TB) *console {
	t.Helper()
	ptm, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("opening a pseudo-terminal: %v", err)
	}
	fd := int(ptm.Fd())
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		t.Fatalf("unlocking the pseudo-terminal: %v", err)
	}
	n, err := unix.IoctlGetInt(fd, unix.TIOCGPTN)
	if err != nil {
		t.Fatalf("naming the pseudo-terminal: %v", err)
	}
	c := &console{pts: fmt.Sprintf("/dev/pts/%d", n), ptm: ptm, done: make(chan struct{})}
	// Held open so that reads do not fail (EIO) while no one else has
	// the terminal open.
	if c.slave, err = os.OpenFile(c.pts, os.O_RDWR|syscall.O_NOCTTY, 0); err != nil {
		t.Fatalf("opening %s: %v", c.pts, err)
	}
	go func() {
		defer close(c.done)
		b := make([]byte, 4096)
		for {
			n, err := ptm.Read(b)
			c.mu.Lock()
			c.buf.WriteString(strings.ReplaceAll(string(b[:n]), "\r", ""))
			c.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() {
		c.slave.Close()
		c.ptm.Close()
		<-c.done
	})
	return c
}

func (c *console) text() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.buf.String()
}
