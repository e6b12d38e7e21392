package bench

import (
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
)

func TestNewLayout(t *testing.T) {
	for _, c := range []struct {
		cpus []int
		want Layout
	}{
		{nil, Layout{}},
		{[]int{3}, Layout{}},
		{[]int{0, 1}, Layout{Server: 1, Client: 0, Agent: 1, Pinned: true}},
		{[]int{2, 5, 7}, Layout{Server: 5, Client: 2, Agent: 7, Pinned: true}},
		{[]int{0, 1, 2, 3}, Layout{Server: 1, Client: 0, Agent: 2, Pinned: true}},
	} {
		if got := NewLayout(c.cpus); got != c.want {
			t.Errorf("NewLayout(%v) = %+v, want %+v", c.cpus, got, c.want)
		}
	}
	if s := NewLayout([]int{0, 1}).String(); !strings.Contains(s, "shares the server's") {
		t.Errorf("two CPUs: %q does not say what is shared", s)
	}
	if l := NewLayout([]int{0}); l.cpuOf(l.Server) != -1 {
		t.Error("one CPU: the server is pinned")
	}
}

// A process started pinned runs on that CPU alone, and the harness's own
// threads keep theirs.
func TestStartPinned(t *testing.T) {
	before, err := AllowedCPUs()
	if err != nil {
		t.Fatal(err)
	}
	cpu := before[len(before)-1]
	cmd := exec.Command("sleep", "60")
	if err := startPinned(cpu, cmd.Start); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cmd.Process.Kill()
		cmd.Wait()
	}()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(cmd.Process.Pid) + "/status")
	if err != nil {
		t.Fatal(err)
	}
	var allowed string
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "Cpus_allowed_list:"); ok {
			allowed = strings.TrimSpace(v)
		}
	}
	if allowed != strconv.Itoa(cpu) {
		t.Errorf("the child may run on CPUs %q, want %d alone", allowed, cpu)
	}
	after, err := AllowedCPUs()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(before, after) {
		t.Errorf("the harness's CPUs went from %v to %v", before, after)
	}
}
