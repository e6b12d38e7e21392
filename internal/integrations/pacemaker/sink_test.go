package pacemaker

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stallmon/stallmon/internal/sink"
)

func TestHealthIsGreenOnlyForAFreshAlive(t *testing.T) {
	now := time.Now()
	cases := []struct {
		v    sink.Verdict
		want string
	}{
		{sink.Verdict{State: sink.Alive, ValidUntil: now.Add(time.Second)}, Green},
		{sink.Verdict{State: sink.Alive}, Green},
		{sink.Verdict{State: sink.Alive, ValidUntil: now.Add(-time.Millisecond)}, Red},
		{sink.Verdict{State: sink.Stalled}, Red},
		{sink.Verdict{State: sink.Stalled, Stall: &sink.Stall{Reason: "over_budget", Kills: true}}, Red},
		// A rule that never kills: moving the resource would stop it here.
		{sink.Verdict{State: sink.Stalled, Stall: &sink.Stall{Reason: "stopped"}}, Yellow},
		{sink.Verdict{State: sink.Stalled, Stall: &sink.Stall{Reason: "frozen"}}, Yellow},
		{sink.Verdict{State: sink.Blind}, Red},
		{sink.Verdict{State: sink.Fenced, Final: true}, Red},
		{sink.Verdict{State: sink.Leaving, Final: true}, Red},
		{sink.Verdict{State: sink.State(42)}, Red},
	}
	for _, c := range cases {
		if got := Health(c.v, now); got != c.want {
			t.Errorf("Health(%v, valid until %v) = %s, want %s", c.v.State, c.v.ValidUntil.Sub(now), got, c.want)
		}
	}
}

func TestNewFindsAttrdUpdaterOrSaysSo(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("PATH", dir)
	_, err := New(Config{})
	if !errors.Is(err, errNoUpdater) || !strings.Contains(err.Error(), "PATH") {
		t.Fatalf("New without attrd_updater on PATH: %v, want errNoUpdater naming PATH", err)
	}
	if strings.Contains(err.Error(), "\n") {
		t.Errorf("error is not one line: %q", err)
	}

	missing := filepath.Join(dir, "nowhere", "attrd_updater")
	if _, err := New(Config{AttrdUpdater: missing}); !errors.Is(err, errNoUpdater) || !strings.Contains(err.Error(), missing) {
		t.Errorf("New with a missing program: %v, want errNoUpdater naming %s", err, missing)
	}
	notExec := filepath.Join(dir, "attrd_updater")
	if err := os.WriteFile(notExec, []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := New(Config{AttrdUpdater: notExec}); !errors.Is(err, errNoUpdater) {
		t.Errorf("New with a program that is not executable: %v, want errNoUpdater", err)
	}
	if err := os.Chmod(notExec, 0o755); err != nil {
		t.Fatal(err)
	}
	// The PATH holds it now.
	s, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	if s.updater != notExec || s.Attribute() != DefaultAttribute || s.Name() != "pacemaker" {
		t.Errorf("New found %q, attribute %q, name %q", s.updater, s.Attribute(), s.Name())
	}
}

func TestNewRejectsAttributeNamesWithSpaces(t *testing.T) {
	for _, name := range []string{"#health stallmon", "a\tb", "x\ny", "nul\x00"} {
		if _, err := New(Config{Attribute: name, AttrdUpdater: "/bin/true"}); err == nil {
			t.Errorf("New accepted attribute %q", name)
		}
	}
}
