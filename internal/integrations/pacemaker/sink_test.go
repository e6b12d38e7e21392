package pacemaker

import (
	"context"
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

// fakeUpdater is an attrd_updater that appends each value it is asked to
// set to a file, one a line, so a test can see every write in order.
func fakeUpdater(t *testing.T) (prog, log string) {
	t.Helper()
	dir := t.TempDir()
	log = filepath.Join(dir, "writes")
	prog = filepath.Join(dir, "attrd_updater")
	script := "#!/bin/sh\nfor a; do case $a in --update=*) echo \"${a#--update=}\" >>" + log + ";; esac; done\n"
	if err := os.WriteFile(prog, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return prog, log
}

func writes(t *testing.T, log string) []string {
	t.Helper()
	b, err := os.ReadFile(log)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return strings.Fields(string(b))
}

// TestCloseSparesAFinalNeverKillStall: a run that ended on a STALLED whose
// rule never kills leaves yellow behind; red would make Pacemaker stop the
// SIGSTOPped or frozen service the rule spares. Any other last verdict
// still ends red.
func TestCloseSparesAFinalNeverKillStall(t *testing.T) {
	stopped := &sink.Stall{Reason: "stopped", Kills: false}
	cases := []struct {
		name string
		last sink.Verdict
		want []string
	}{
		{"final never-kill stall", sink.Verdict{State: sink.Stalled, Stall: stopped, Final: true}, []string{Yellow}},
		// Not final: stallmon went without its last word; nobody vouches.
		{"never-kill stall, not final", sink.Verdict{State: sink.Stalled, Stall: stopped}, []string{Yellow, Red}},
		{"final killing stall", sink.Verdict{State: sink.Stalled, Stall: &sink.Stall{Reason: "over_budget", Kills: true}, Final: true}, []string{Red}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			prog, log := fakeUpdater(t)
			s, err := New(Config{AttrdUpdater: prog})
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Apply(t.Context(), c.last); err != nil {
				t.Fatal(err)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			if got := writes(t, log); strings.Join(got, " ") != strings.Join(c.want, " ") {
				t.Errorf("writes %q, want %q", got, c.want)
			}
		})
	}

	// A yellow whose write failed is written again by Close, not red.
	prog, log := fakeUpdater(t)
	s, err := New(Config{AttrdUpdater: prog})
	if err != nil {
		t.Fatal(err)
	}
	dead, cancel := context.WithCancel(t.Context())
	cancel()
	if err := s.Apply(dead, sink.Verdict{State: sink.Stalled, Stall: stopped, Final: true}); err == nil {
		t.Fatal("Apply with a cancelled context succeeded")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if got := writes(t, log); strings.Join(got, " ") != Yellow {
		t.Errorf("after a failed yellow, Close wrote %q, want yellow", got)
	}
}
