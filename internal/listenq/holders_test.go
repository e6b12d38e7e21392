package listenq

import (
	"net"
	"os"
	"os/exec"
	"slices"
	"testing"
)

// A listener a child process inherited is reported once, with both
// processes as holders: either may be the one that accepts, and a
// stopped holder must spare it (see the agent's work_waiting tests).
func TestSharedListenerListsEveryHolder(t *testing.T) {
	s := openScanner(t)
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	f, err := ln.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	child := exec.Command("sleep", "60")
	child.ExtraFiles = []*os.File{f}
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { child.Process.Kill(); child.Wait() })
	ls, err := s.Scan([]int{os.Getpid(), child.Process.Pid}, false)
	if err != nil {
		t.Fatal(err)
	}
	var found []Listener
	for _, l := range ls {
		if l.Addr == ln.Addr().String() {
			found = append(found, l)
		}
	}
	if len(found) != 1 {
		t.Fatalf("listener %s reported %d times, want once: %+v", ln.Addr(), len(found), found)
	}
	l := found[0]
	want := []int{os.Getpid(), child.Process.Pid}
	if len(l.Holders) != 2 || l.MoreHolders || !slices.Contains(l.Holders, want[0]) || !slices.Contains(l.Holders, want[1]) || l.Holders[0] != l.PID {
		t.Fatalf("holders %v (more: %v, pid %d), want %v, the pid first, each once", l.Holders, l.MoreHolders, l.PID, want)
	}
}

// Holders are kept once each and bounded; past the bound the listener
// says some were left out.
func TestHoldersBounded(t *testing.T) {
	l := Listener{PID: 1, Holders: []int{1}}
	for pid := 1; pid <= MaxHolders+5; pid++ {
		l.held(pid)
		l.held(pid)
	}
	if len(l.Holders) != MaxHolders || !l.MoreHolders || l.Holders[0] != 1 {
		t.Fatalf("%d holders (more: %v, first %d), want %d, more, 1 first", len(l.Holders), l.MoreHolders, l.Holders[0], MaxHolders)
	}
}
