package main

import (
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/pflag"

	"github.com/stallmon/stallmon/internal/testutil/sdnotifytest"
)

func buildSystemdFlags(t *testing.T, target sinkTarget, args ...string) error {
	t.Helper()
	fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
	var o systemdFlags
	o.register(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	s, err := o.build(target, slog.New(slog.DiscardHandler))
	if err == nil && s != nil {
		if s.Name() != "systemd" {
			t.Errorf("sink named %q", s.Name())
		}
		s.Close()
	}
	if err == nil && s == nil && fs.Changed("systemd-notify") {
		t.Errorf("%q: no sink and no error", args)
	}
	return err
}

func TestSystemdNotifyFlags(t *testing.T) {
	sock := sdnotifytest.Temp(t)
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("WATCHDOG_USEC", "")
	t.Setenv("NOTIFY_SOCKET", "")
	for _, c := range []struct {
		args []string
		msg  string // "" for success
	}{
		{nil, ""},
		{[]string{"--notify-socket", sock.Addr}, "--notify-socket needs --systemd-notify"},
		{[]string{"--systemd-notify", "--notify-socket", sock.Addr}, ""},
		{[]string{"--systemd-notify", "--notify-socket", "@stallmon-abstract"}, ""},
		{[]string{"--systemd-notify", "--notify-socket", "run/systemd/notify"}, "absolute path or @abstract-name"},
		{[]string{"--systemd-notify", "--notify-socket", "/nonexistent/notify"}, "no such file"},
		{[]string{"--systemd-notify", "--notify-socket", file}, "is not a socket"},
	} {
		err := buildSystemdFlags(t, sinkTarget{PID: 1}, c.args...)
		if c.msg == "" && err != nil || c.msg != "" && (err == nil || !strings.Contains(err.Error(), c.msg)) {
			t.Errorf("%q: %v, want %q", c.args, err, c.msg)
		}
	}
	// The socket defaults to $NOTIFY_SOCKET, as sd_notify(3) reads it.
	t.Setenv("NOTIFY_SOCKET", file)
	if err := buildSystemdFlags(t, sinkTarget{PID: 1}, "--systemd-notify"); err == nil || !strings.Contains(err.Error(), file) {
		t.Errorf("with $NOTIFY_SOCKET=%s (not a socket): %v", file, err)
	}
	t.Setenv("NOTIFY_SOCKET", sock.Addr)
	if err := buildSystemdFlags(t, sinkTarget{PID: 1}, "--systemd-notify"); err != nil {
		t.Errorf("with $NOTIFY_SOCKET=%s: %v", sock.Addr, err)
	}
	t.Setenv("WATCHDOG_USEC", "soon")
	if err := buildSystemdFlags(t, sinkTarget{PID: 1}, "--systemd-notify"); err == nil || !strings.Contains(err.Error(), "WATCHDOG_USEC") {
		t.Errorf("with $WATCHDOG_USEC=soon: %v", err)
	}
}
