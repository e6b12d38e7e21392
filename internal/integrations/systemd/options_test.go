package systemd

import (
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stallmon/stallmon/internal/sink"
	"github.com/stallmon/stallmon/internal/testutil/sdnotifytest"
)

// buildOptions returns o's error, and checks the sink o makes.
func buildOptions(t *testing.T, o Options) error {
	t.Helper()
	s, err := o.Sink(sink.Target{PID: 1}, slog.New(slog.DiscardHandler))
	if err == nil && s != nil {
		if s.Name() != "systemd" {
			t.Errorf("sink named %q", s.Name())
		}
		s.Close()
	}
	if err == nil && s == nil && o.On {
		t.Errorf("%+v: no sink and no error", o)
	}
	return err
}

func TestOptions(t *testing.T) {
	sock := sdnotifytest.Temp(t)
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("WATCHDOG_USEC", "")
	t.Setenv("NOTIFY_SOCKET", "")
	for _, c := range []struct {
		o   Options
		msg string // "" for success
	}{
		{Options{}, ""},
		{Options{Socket: sock.Addr}, "--notify-socket needs --systemd-notify"},
		{Options{On: true, Socket: sock.Addr}, ""},
		{Options{On: true, Socket: "@stallmon-abstract"}, ""},
		{Options{On: true, Socket: "run/systemd/notify"}, "absolute path or @abstract-name"},
		{Options{On: true, Socket: "/nonexistent/notify"}, "no such file"},
		{Options{On: true, Socket: file}, "is not a socket"},
	} {
		err := buildOptions(t, c.o)
		if c.msg == "" && err != nil || c.msg != "" && (err == nil || !strings.Contains(err.Error(), c.msg)) {
			t.Errorf("%+v: %v, want %q", c.o, err, c.msg)
		}
	}
	// The socket defaults to $NOTIFY_SOCKET, as sd_notify(3) reads it.
	t.Setenv("NOTIFY_SOCKET", file)
	if err := buildOptions(t, Options{On: true}); err == nil || !strings.Contains(err.Error(), file) {
		t.Errorf("with $NOTIFY_SOCKET=%s (not a socket): %v", file, err)
	}
	t.Setenv("NOTIFY_SOCKET", sock.Addr)
	if err := buildOptions(t, Options{On: true}); err != nil {
		t.Errorf("with $NOTIFY_SOCKET=%s: %v", sock.Addr, err)
	}
	t.Setenv("WATCHDOG_USEC", "soon")
	if err := buildOptions(t, Options{On: true}); err == nil || !strings.Contains(err.Error(), "WATCHDOG_USEC") {
		t.Errorf("with $WATCHDOG_USEC=soon: %v", err)
	}
}
