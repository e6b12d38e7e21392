package budget

import (
	"bytes"
	"testing"
	"time"

	"github.com/stallmon/stallmon/fdkind"
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
	flush := Rule{Budget: 10 * time.Second, KillAfter: 2 * time.Minute}
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
		{"ioctl", fdkind.TTY, free},
		{"ioctl", fdkind.Device, bounded},
		{"fsync", fdkind.Regular, flush},
		{"fdatasync", fdkind.Regular, flush},
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
	if got := tb.Lookup("fsync", fdkind.Regular); got.Budget != 10*time.Second {
		t.Errorf("fsync's own budget changed by the override: %v", got)
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
	tb, err := parse([]byte("default: unbounded\nsyscalls:\n  epoll_wait: unbounded\n"), none, true)
	if err != nil {
		t.Fatal(err)
	}
	if n := tb.Names(); len(n) != 0 {
		t.Errorf("kept %v, which the architecture lacks", n)
	}
	_, err = parse([]byte("default: unbounded\nsyscalls:\n  epoll_wait: {budget: 0s}\n"), none, true)
	if ce := configError(t, err); ce.Line != 3 {
		t.Errorf("bad rule in a skipped entry: %v, want line 3", err)
	}
}
