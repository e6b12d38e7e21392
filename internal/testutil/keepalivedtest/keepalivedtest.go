// Package keepalivedtest runs two real keepalived instances (Debian's
// package) in two network namespaces of their own, joined by a veth pair,
// configured from deploy/keepalived/keepalived.conf.tmpl: the setup the
// docs/integrations.md shows, with a VIP that moves between them.
package keepalivedtest

import (
	"github.com/stallmon/stallmon/internal/testutil/repo"

	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"text/template"
	"time"

	"github.com/stallmon/stallmon/internal/testutil/nettest"
	"github.com/stallmon/stallmon/internal/testutil/privtest"
)

// VIP is the address the pair hands between them, in TEST-NET-1 beside
// the nodes' own (nettest.VethPair).
const VIP = "192.0.2.100"

// TemplatePath is the shipped configuration, relative to the module root.
const TemplatePath = "deploy/keepalived/keepalived.conf.tmpl"

// Config fills the template's fields.
type Config struct {
	Node      string // router_id
	File      string // the track_file stallmon writes
	Interface string
	RouterID  int // virtual_router_id, the same on both nodes
	Priority  int
	Address   string // this node's address, the unicast source
	Peer      string
	VIP       string // with its prefix length
}

// Render fills the shipped template.
func Render(c Config) ([]byte, error) {
	root, err := repo.Find()
	if err != nil {
		return nil, err
	}
	tmpl, err := template.New(filepath.Base(TemplatePath)).Option("missingkey=error").
		ParseFiles(filepath.Join(root, TemplatePath))
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	if err := tmpl.Execute(&b, c); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// moduleRoot walks up from the working directory (a test's package
// directory) to go.mod.

// Require fails or skips t unless it runs as root with keepalived, ip and
// pgrep installed.
func Require(t testing.TB) {
	t.Helper()
	privtest.Require(t)
	for _, cmd := range []string{"keepalived", "ip", "pgrep"} {
		if _, err := exec.LookPath(cmd); err != nil {
			privtest.Unavailable(t, fmt.Sprintf("needs %s (apt-get install keepalived iproute2 procps): %v", cmd, err))
			return
		}
	}
}

// Node is one keepalived instance in its own network namespace.
type Node struct {
	Name   string // also its network namespace
	Iface  string
	Addr   string
	File   string // its track_file
	dir    string
	parent *exec.Cmd
	out    *lockedBuffer
	exited chan struct{}
}

// Pair is node A (priority 200), which holds the VIP while healthy, and
// node B (priority 100), which takes it when A is not.
type Pair struct {
	A, B *Node
}

// StartPair creates the namespaces and the veth pair, renders the template
// for each node with its own track_file (fileA, fileB) and starts both
// keepalived instances. Everything goes when the test ends.
//
// The files must exist before keepalived starts, and each node's
// vrrp_script wants a process naming its file (a stallmon, or StandIn):
// a node without either is in FAULT and never takes the VIP.
func StartPair(t testing.TB, fileA, fileB string) *Pair {
	t.Helper()
	Require(t)
	link := nettest.VethPair(t)
	p := &Pair{
		A: &Node{Name: link.A, Iface: link.IfA, Addr: link.AddrA, File: fileA, dir: t.TempDir()},
		B: &Node{Name: link.B, Iface: link.IfB, Addr: link.AddrB, File: fileB, dir: t.TempDir()},
	}
	p.A.start(t, Config{Node: p.A.Name, File: fileA, Interface: p.A.Iface, RouterID: 51, Priority: 200,
		Address: p.A.Addr, Peer: p.B.Addr, VIP: VIP + "/32"})
	p.B.start(t, Config{Node: p.B.Name, File: fileB, Interface: p.B.Iface, RouterID: 51, Priority: 100,
		Address: p.B.Addr, Peer: p.A.Addr, VIP: VIP + "/32"})
	return p
}

func (n *Node) start(t testing.TB, c Config) {
	t.Helper()
	conf, err := Render(c)
	if err != nil {
		t.Fatalf("rendering %s: %v", TemplatePath, err)
	}
	confPath := filepath.Join(n.dir, "keepalived.conf")
	if err := os.WriteFile(confPath, conf, 0o644); err != nil {
		t.Fatal(err)
	}
	pidFile, vrrpPidFile := filepath.Join(n.dir, "keepalived.pid"), filepath.Join(n.dir, "vrrp.pid")
	// keepalived -n stays in the foreground; -l -D log to stderr, in
	// detail; its own pid files let instances run side by side.
	n.parent = exec.Command("ip", "netns", "exec", n.Name,
		"keepalived", "-n", "-l", "-D", "-f", confPath, "-p", pidFile, "-r", vrrpPidFile)
	n.out = &lockedBuffer{}
	n.parent.Stdout, n.parent.Stderr = n.out, n.out
	n.parent.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := n.parent.Start(); err != nil {
		t.Fatalf("starting keepalived: %v", err)
	}
	n.exited = make(chan struct{})
	go func() { n.parent.Wait(); close(n.exited) }()
	t.Cleanup(func() {
		n.stop(t, vrrpPidFile)
		if t.Failed() {
			t.Logf("keepalived %s:\n%s", n.Name, n.out.String())
		}
	})
}

// stop ends keepalived with SIGTERM, as its unit would, and then its VRRP
// child by its pid file should the parent have gone without it.
func (n *Node) stop(t testing.TB, vrrpPidFile string) {
	vrrpPid := 0
	if b, err := os.ReadFile(vrrpPidFile); err == nil {
		vrrpPid, _ = strconv.Atoi(strings.TrimSpace(string(b)))
	}
	n.parent.Process.Signal(syscall.SIGTERM)
	select {
	case <-n.exited:
	case <-time.After(5 * time.Second):
		t.Errorf("keepalived %s still running 5s after SIGTERM: killing it", n.Name)
		n.parent.Process.Kill()
		<-n.exited
	}
	if vrrpPid > 0 && isKeepalived(vrrpPid) {
		syscall.Kill(vrrpPid, syscall.SIGKILL)
	}
}

func isKeepalived(pid int) bool {
	comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	return err == nil && strings.TrimSpace(string(comm)) == "keepalived"
}

// HasVIP reports whether the VIP is on n's interface, by `ip -br addr`.
func (n *Node) HasVIP(t testing.TB) bool {
	t.Helper()
	out, err := exec.Command("ip", "-n", n.Name, "-br", "addr", "show", "dev", n.Iface).Output()
	if err != nil {
		t.Fatalf("ip -n %s addr: %v", n.Name, err)
	}
	return strings.Contains(string(out), " "+VIP+"/32")
}

// WaitVIP polls until the VIP is on n, and returns when it was seen. It
// fails the test after timeout.
func (n *Node) WaitVIP(t testing.TB, timeout time.Duration) time.Time {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if n.HasVIP(t) {
			return time.Now()
		}
		if time.Now().After(deadline) {
			t.Fatalf("VIP %s not on %s after %v", VIP, n.Name, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// WaitNoVIP polls until the VIP is off n. A node that hands the VIP back
// holds it until it processes the new master's first advert: a test that
// waits for the VIP elsewhere must first see it gone from here.
func (n *Node) WaitNoVIP(t testing.TB, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for n.HasVIP(t) {
		if time.Now().After(deadline) {
			t.Fatalf("VIP %s still on %s after %v", VIP, n.Name, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Log is what keepalived printed so far.
func (n *Node) Log() string { return n.out.String() }

// WriteFile writes value to path the way a stallmon would, atomically.
func WriteFile(t testing.TB, path string, value int) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(strconv.Itoa(value)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// StandIn starts a process whose command line names file the way
// stallmon's does (a sleep with a borrowed argv[0]), for the node whose
// file the test writes itself: its vrrp_script then finds a writer. It is
// killed when the test ends; kill it earlier to play a stallmon that died.
func StandIn(t testing.TB, file string) *exec.Cmd {
	t.Helper()
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Fatal(err)
	}
	cmd := &exec.Cmd{Path: sleep, Args: []string{"stallmon --keepalived-file=" + file, "infinity"}}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() { cmd.Process.Kill(); <-done })
	return cmd
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
