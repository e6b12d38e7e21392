package waitsite

import (
	"bufio"
	"os"
	"strings"
	"testing"
)

// The stacks of real waits, taken on each kernel stallmon runs on, keep
// their class: a change to the table that misreads one fails here, on any
// machine, before the kernels' own tests run.
func TestRealStacks(t *testing.T) {
	f, err := os.Open("testdata/stacks.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	n := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		head, stack, ok := strings.Cut(line, ": ")
		want, site, ok2 := strings.Cut(head, " ")
		if !ok || !ok2 {
			t.Fatalf("malformed line %q", line)
		}
		frames := strings.Split(stack, " | ")
		known := make([]bool, len(frames))
		for i := range known {
			known[i] = true
		}
		c, s := classifyStack(frames, known)
		if c.String() != want || s != site {
			t.Errorf("%s: classified %s %s, want %s %s", stack, c, s, want, site)
		}
		n++
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if n < 20 {
		t.Fatalf("%d stacks, want the fixture's", n)
	}
}

func TestClassify(t *testing.T) {
	for _, c := range []struct {
		frames []string
		want   Class
		site   string
	}{
		// Compiler suffixes are dropped.
		{[]string{"do_sigtimedwait.isra.0"}, Other, "do_sigtimedwait"},
		{[]string{"wait_woken", "sk_wait_data.cold"}, SocketRecv, "sk_wait_data"},
		// Subsystems by prefix, minus what a prefix would misname.
		{[]string{"fuse_do_getattr", "vfs_statx"}, FUSE, "fuse_do_getattr"},
		{[]string{"fuse_dev_do_read", "fuse_dev_read"}, Other, "fuse_dev_do_read"},
		{[]string{"nfs_wait_bit_killable"}, NFS, "nfs_wait_bit_killable"},
		{[]string{"jbd2_log_wait_commit"}, Storage, "jbd2_log_wait_commit"},
		// The first deciding frame decides, even an unknown one.
		{[]string{"some_new_wait", "sk_stream_wait_memory"}, Other, "some_new_wait"},
		// Generic helpers alone decide nothing.
		{[]string{"schedule_timeout", "wait_woken"}, Unknown, ""},
		{nil, Unknown, ""},
	} {
		known := make([]bool, len(c.frames))
		for i := range known {
			known[i] = true
		}
		got, site := classifyStack(c.frames, known)
		if got != c.want || site != c.site {
			t.Errorf("%q: %s %q, want %s %q", c.frames, got, site, c.want, c.site)
		}
	}
}

// Every class has a name of its own, and no rule-relevant class is
// named like the ones that say nothing.
func TestClassNames(t *testing.T) {
	seen := map[string]Class{}
	for c := Unknown; c < numClasses; c++ {
		name := c.String()
		if name == "" {
			t.Errorf("class %d has no name", c)
		}
		if prev, dup := seen[name]; dup {
			t.Errorf("classes %d and %d are both %q", prev, c, name)
		}
		seen[name] = c
	}
	for _, c := range sites {
		if c == None || c == Unknown || c == Other {
			t.Errorf("the table names a site %s: it would decide nothing", c)
		}
	}
}
