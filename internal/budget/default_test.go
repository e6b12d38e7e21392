package budget

import (
	"bytes"
	"testing"
	"time"

	"github.com/stallmon/stallmon/internal/fdkind"
)

func TestDefaultParsesOnAMD64(t *testing.T) {
	names := amd64Names(t)
	// Strict parsing: a name in default.yaml that amd64 lacks is an error
	// here, though Default itself would skip it.
	if _, err := Parse(defaultYAML, knownIn(names)); err != nil {
		t.Fatalf("default.yaml with the amd64 names: %v", err)
	}
	tb, err := Default(knownIn(names))
	if err != nil {
		t.Fatal(err)
	}
	all, err := Default(nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range all.Names() {
		if !names[n] {
			t.Errorf("default.yaml names %q, which is not an amd64 syscall", n)
		}
	}
	if got, want := len(tb.Names()), len(all.Names()); got != want {
		t.Errorf("Default kept %d of %d syscalls on amd64", got, want)
	}
}

func TestDefaultSkipsMissingSyscalls(t *testing.T) {
	names := amd64Names(t)
	// arm64 has neither epoll_wait nor poll: the table must still load.
	delete(names, "epoll_wait")
	delete(names, "poll")
	tb, err := Default(knownIn(names))
	if err != nil {
		t.Fatalf("Default on an architecture without epoll_wait: %v", err)
	}
	for _, n := range tb.Names() {
		if n == "epoll_wait" || n == "poll" {
			t.Errorf("Default kept %s, which the architecture lacks", n)
		}
	}
	if !tb.Lookup("epoll_pwait", fdkind.None).Unbounded {
		t.Error("epoll_pwait lost with epoll_wait")
	}
}

func TestDefaultChoices(t *testing.T) {
	tb, err := Default(nil)
	if err != nil {
		t.Fatal(err)
	}
	bounded := Rule{Budget: 5 * time.Second, KillAfter: time.Minute}
	flush := Rule{Budget: 30 * time.Second, KillAfter: 2 * time.Minute}
	memory := Rule{Budget: time.Minute, KillAfter: 2 * time.Minute}
	free := Rule{Unbounded: true}
	cases := []struct {
		syscall string
		kind    fdkind.Kind
		want    Rule
	}{
		{"openat", fdkind.None, bounded},
		{"newfstatat", fdkind.None, bounded},
		{"read", fdkind.Regular, bounded},
		{"read", fdkind.Device, bounded},
		{"read", fdkind.None, bounded},
		{"read", fdkind.Socket, free},
		{"read", fdkind.Pipe, free},
		{"read", fdkind.TTY, free},
		{"read", fdkind.Other, free},
		{"write", fdkind.Regular, bounded},
		{"write", fdkind.Socket, free},
		{"pread64", fdkind.Regular, bounded},
		{"sendfile", fdkind.Regular, bounded},
		{"sendfile", fdkind.Socket, free},
		{"splice", fdkind.Pipe, free},
		{"splice", fdkind.Socket, free},
		{"splice", fdkind.Regular, bounded},
		{"splice", fdkind.Device, bounded},
		{"tee", fdkind.Pipe, free},
		{"vmsplice", fdkind.Pipe, free},
		{"copy_file_range", fdkind.Regular, bounded},
		{"ioctl", fdkind.TTY, free},
		{"ioctl", fdkind.Other, free},
		{"ioctl", fdkind.Device, bounded},
		{"close", fdkind.TTY, Rule{Budget: 35 * time.Second, KillAfter: 2 * time.Minute}},
		{"close", fdkind.Regular, bounded},
		{"close", fdkind.Socket, free},
		{"close", fdkind.None, bounded},
		{"vfork", fdkind.None, free},
		{"clone", fdkind.None, free},
		{"clone3", fdkind.None, free},
		{"fsync", fdkind.Regular, flush},
		{"fdatasync", fdkind.Regular, flush},
		{"sync", fdkind.None, flush},
		{"msync", fdkind.None, flush},
		{"mmap", fdkind.None, memory},
		{"munmap", fdkind.None, memory},
		{"madvise", fdkind.None, memory},
		{"mlockall", fdkind.None, memory},
		{"brk", fdkind.None, memory},
		{"move_pages", fdkind.None, memory},
		{"epoll_wait", fdkind.None, free},
		{"futex", fdkind.None, free},
		{"accept4", fdkind.Socket, free},
		{"wait4", fdkind.None, free},
		{"restart_syscall", fdkind.None, free},
	}
	for _, c := range cases {
		if got := tb.Lookup(c.syscall, c.kind); got != c.want {
			t.Errorf("default Lookup(%s, %v) = %v, want %v", c.syscall, c.kind, got, c.want)
		}
	}
}

func TestDefaultStateChoices(t *testing.T) {
	tb, err := Default(nil)
	if err != nil {
		t.Fatal(err)
	}
	bounded := Rule{Budget: 5 * time.Second, KillAfter: time.Minute}
	flush := Rule{Budget: 30 * time.Second, KillAfter: 2 * time.Minute}
	memory := Rule{Budget: time.Minute, KillAfter: 2 * time.Minute}
	free := Rule{Unbounded: true}
	U, R := Uninterruptible, Running
	cases := []struct {
		syscall string
		kind    fdkind.Kind
		state   State
		want    Rule
		why     string
	}{
		{"clone3", fdkind.None, U, free, "posix_spawn parent waits in killable D for exec"},
		{"clone", fdkind.None, U, free, "os/exec's CLONE_VFORK"},
		{"vfork", fdkind.None, U, free, "vfork parent"},
		{"clone3", fdkind.None, R, Rule{Budget: 30 * time.Second, KillAfter: 2 * time.Minute}, "a fork copying a huge address space runs 30s, and is still bounded"},
		{"fsync", fdkind.Regular, U, flush, "fsync in D stays within its own rule"},
		{"mmap", fdkind.None, R, memory, "MAP_POPULATE of tens of GB runs in the kernel"},
		{"mlockall", fdkind.None, R, memory, "mlockall populates what it locks"},
		{"mmap", fdkind.None, U, memory, "a sibling's mmap waits in D for the mmap_lock a populate holds"},
		{"munmap", fdkind.None, U, memory, "so does its munmap"},
		{"close", fdkind.Socket, U, bounded, "a lingering close sleeps in S; one in D is still bounded"},
		{"epoll_wait", fdkind.None, U, bounded, "an unbounded wait stuck in D is bounded"},
		{"io_uring_enter", fdkind.None, R, bounded, "running in the kernel is bounded"},
		{"poll", fdkind.None, U, bounded, "poll stuck in D"},
		{"read", fdkind.Socket, U, bounded, "a socket read in D"},
		{"ioctl", fdkind.Other, R, free, "KVM_RUN runs the guest inside the ioctl"},
		{"ioctl", fdkind.Other, U, bounded, "a vcpu ioctl in D is still bounded"},
		{"ioctl", fdkind.Device, R, bounded, "device ioctls stay bounded"},
		{"close", fdkind.TTY, U, Rule{Budget: 35 * time.Second, KillAfter: 2 * time.Minute}, "a serial close drains within its own rule"},
		{"", fdkind.None, U, bounded, "io_uring workers and page faults"},
	}
	for _, c := range cases {
		if got := tb.StateRule(c.syscall, c.kind, c.state); got != c.want {
			t.Errorf("default StateRule(%q, %v, %v) = %v, want %v (%s)", c.syscall, c.kind, c.state, got, c.want, c.why)
		}
	}
	for s, want := range map[State]Rule{
		Stopped:     {Budget: 3 * time.Second},
		Traced:      {Budget: 3 * time.Second},
		Frozen:      {Budget: 3 * time.Second},
		DumpingCore: {Budget: 5 * time.Second},
		Exiting:     bounded,
	} {
		if got := tb.ProcessRule(s); got != want {
			t.Errorf("default ProcessRule(%v) = %v, want %v", s, got, want)
		}
	}
	if max, kills := tb.MaxKillAfter(); max != 2*time.Minute || !kills {
		t.Errorf("default MaxKillAfter = %v, %v; want 2m, true", max, kills)
	}
}

func TestDefaultTwoFDSyscalls(t *testing.T) {
	tb, err := Default(nil)
	if err != nil {
		t.Fatal(err)
	}
	bounded := Rule{Budget: 5 * time.Second, KillAfter: time.Minute}
	cases := []struct {
		syscall string
		kinds   []fdkind.Kind
		want    Rule
		by      fdkind.Kind
	}{
		{"sendfile", []fdkind.Kind{fdkind.Socket, fdkind.Regular}, bounded, fdkind.Regular},
		{"sendfile", []fdkind.Kind{fdkind.Pipe, fdkind.Socket}, Rule{Unbounded: true}, fdkind.Pipe},
		{"splice", []fdkind.Kind{fdkind.Pipe, fdkind.Socket}, Rule{Unbounded: true}, fdkind.Pipe},
		{"splice", []fdkind.Kind{fdkind.Regular, fdkind.Pipe}, bounded, fdkind.Regular},
		{"tee", []fdkind.Kind{fdkind.Pipe, fdkind.Pipe}, Rule{Unbounded: true}, fdkind.Pipe},
		{"copy_file_range", []fdkind.Kind{fdkind.Regular, fdkind.Regular}, bounded, fdkind.Regular},
	}
	for _, c := range cases {
		if got, by := tb.LookupFDs(c.syscall, c.kinds...); got != c.want || by != c.by {
			t.Errorf("default LookupFDs(%s, %v) = %v, %v; want %v, %v", c.syscall, c.kinds, got, by, c.want, c.by)
		}
	}
}

func TestDefaultFollowsOverrides(t *testing.T) {
	tb, err := Default(nil)
	if err != nil {
		t.Fatal(err)
	}
	tb, err = tb.WithDefaults(dur(2*time.Second), dur(20*time.Second))
	if err != nil {
		t.Fatalf("overriding the built-in default: %v", err)
	}
	want := Rule{Budget: 2 * time.Second, KillAfter: 20 * time.Second}
	for _, name := range []string{"read", "write", "ioctl", "openat"} {
		if got := tb.Lookup(name, fdkind.Regular); got != want {
			t.Errorf("%s on a file after override = %v, want %v", name, got, want)
		}
	}
	if got := tb.Lookup("fsync", fdkind.Regular); got.Budget != 30*time.Second {
		t.Errorf("fsync's own budget changed by the override: %v", got)
	}

	// States inherit the default, so the overrides move them too.
	tb, err = Default(nil)
	if err != nil {
		t.Fatal(err)
	}
	tb, err = tb.WithDefaults(dur(time.Second), dur(3*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	moved := Rule{Budget: time.Second, KillAfter: 3 * time.Second}
	for _, s := range []State{Uninterruptible, Running} {
		if got := tb.StateRule("poll", fdkind.None, s); got != moved {
			t.Errorf("poll %v after --budget 1s --kill-after 3s = %v, want %v", s, got, moved)
		}
	}
	for _, s := range []State{PageFault, Exiting} {
		if got := tb.ProcessRule(s); got != moved {
			t.Errorf("%v after override = %v, want %v", s, got, moved)
		}
	}
	if got := tb.ProcessRule(DumpingCore); got != (Rule{Budget: time.Second}) {
		t.Errorf("dumping_core after override = %v, want 1s/never", got)
	}
	if got := tb.ProcessRule(Stopped); got != (Rule{Budget: 3 * time.Second}) {
		t.Errorf("stopped, pinned by the built-in table, after override = %v, want 3s/never", got)
	}
	if got := tb.StateRule("clone3", fdkind.None, Uninterruptible); !got.Unbounded {
		t.Errorf("clone3's explicit override moved: %v", got)
	}
	if got := tb.StateRule("fsync", fdkind.Regular, Uninterruptible); got != (Rule{Budget: 30 * time.Second, KillAfter: 2 * time.Minute}) {
		t.Errorf("fsync in D after override = %v, want its own rule", got)
	}
}

func TestDefaultYAMLIsACopy(t *testing.T) {
	a := DefaultYAML()
	a[0] = 'X'
	if b := DefaultYAML(); bytes.Equal(a, b) || !bytes.Equal(b, defaultYAML) {
		t.Error("DefaultYAML exposes the embedded bytes")
	}
}

func TestSkippedEntriesAreStillChecked(t *testing.T) {
	none := knownIn(map[string]bool{})
	skip := layerOpts{dropUnknown: true}
	l, err := parseLayer([]byte("default: unbounded\nsyscalls:\n  epoll_wait: unbounded\n"), none, skip, &source{})
	if err != nil {
		t.Fatal(err)
	}
	if len(l.entries) != 0 {
		t.Errorf("kept %v, which the architecture lacks", l.entries)
	}
	_, err = parseLayer([]byte("default: unbounded\nsyscalls:\n  epoll_wait: {budget: 0s}\n"), none, skip, &source{})
	if ce := configError(t, err); ce.Line != 3 {
		t.Errorf("bad rule in a skipped entry: %v, want line 3", err)
	}
}
