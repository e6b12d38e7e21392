package main

import (
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/pflag"

	"github.com/stallmon/stallmon/internal/integrations/pacemaker"
)

func TestPacemakerFlags(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "attrd_updater")
	if err := os.WriteFile(bin, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(t.TempDir(), "attrd_updater")
	cases := []struct {
		args    []string
		wantErr string // "" for none
		wantOn  bool
		attr    string
	}{
		{args: nil},
		{args: []string{"--pacemaker", "--attrd-updater", bin}, wantOn: true, attr: pacemaker.DefaultAttribute},
		{args: []string{"--pacemaker", "--attrd-updater", bin, "--pacemaker-attribute", "stallmon"}, wantOn: true, attr: "stallmon"},
		{args: []string{"--pacemaker-attribute", "stallmon"}, wantErr: "--pacemaker-attribute needs --pacemaker"},
		{args: []string{"--attrd-updater", bin}, wantErr: "--attrd-updater needs --pacemaker"},
		{args: []string{"--pacemaker", "--attrd-updater", missing}, wantErr: "attrd_updater not found"},
		{args: []string{"--pacemaker", "--attrd-updater", bin, "--pacemaker-attribute", ""}, wantErr: "--pacemaker-attribute is empty"},
		{args: []string{"--pacemaker", "--attrd-updater", bin, "--pacemaker-attribute", "a b"}, wantErr: "no spaces"},
	}
	for _, c := range cases {
		o := &pacemakerOptions{}
		f := pflag.NewFlagSet("test", pflag.ContinueOnError)
		o.register(f)
		if err := f.Parse(c.args); err != nil {
			t.Fatal(err)
		}
		s, err := o.build(sinkTarget{NodeID: "n1"}, slog.New(slog.DiscardHandler))
		switch {
		case c.wantErr != "":
			if err == nil || !strings.Contains(err.Error(), c.wantErr) || strings.Contains(err.Error(), "\n") {
				t.Errorf("%q: error %v, want one line with %q", c.args, err, c.wantErr)
			}
		case err != nil:
			t.Errorf("%q: %v", c.args, err)
		case (s != nil) != c.wantOn:
			t.Errorf("%q: sink %v, want enabled %v", c.args, s, c.wantOn)
		case s != nil && s.(*pacemaker.Sink).Attribute() != c.attr:
			t.Errorf("%q: attribute %q, want %q", c.args, s.(*pacemaker.Sink).Attribute(), c.attr)
		}
	}
}
