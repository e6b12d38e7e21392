package pacemaker

import (
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stallmon/stallmon/internal/sink"
)

func TestOptions(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "attrd_updater")
	if err := os.WriteFile(bin, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(t.TempDir(), "attrd_updater")
	cases := []struct {
		o       Options
		wantErr string // "" for none
		attr    string // "" for no sink
	}{
		{o: Options{}},
		{o: Options{On: true, AttrdUpdater: bin}, attr: DefaultAttribute},
		{o: Options{On: true, AttrdUpdater: bin, Attribute: "stallmon", AttributeSet: true}, attr: "stallmon"},
		{o: Options{Attribute: "stallmon", AttributeSet: true}, wantErr: "--pacemaker-attribute needs --pacemaker"},
		{o: Options{AttrdUpdater: bin}, wantErr: "--attrd-updater needs --pacemaker"},
		{o: Options{On: true, AttrdUpdater: missing}, wantErr: "attrd_updater not found"},
		{o: Options{On: true, AttrdUpdater: bin, AttributeSet: true}, wantErr: "--pacemaker-attribute is empty"},
		{o: Options{On: true, AttrdUpdater: bin, Attribute: "a b", AttributeSet: true}, wantErr: "no spaces"},
	}
	for _, c := range cases {
		s, err := c.o.Sink(sink.Target{NodeID: "n1"}, slog.New(slog.DiscardHandler))
		switch {
		case c.wantErr != "":
			if err == nil || !strings.Contains(err.Error(), c.wantErr) || strings.Contains(err.Error(), "\n") {
				t.Errorf("%+v: error %v, want one line with %q", c.o, err, c.wantErr)
			}
		case err != nil:
			t.Errorf("%+v: %v", c.o, err)
		case (s != nil) != (c.attr != ""):
			t.Errorf("%+v: sink %v, want one: %v", c.o, s, c.attr != "")
		case s != nil && s.(*Sink).Attribute() != c.attr:
			t.Errorf("%+v: attribute %q, want %q", c.o, s.(*Sink).Attribute(), c.attr)
		}
	}
}
