package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestListenFlagValidation(t *testing.T) {
	dir := t.TempDir()
	writeKey := func(name string, secretLen int) string {
		path := filepath.Join(dir, name)
		text := "id=1\nsecret=" + hex.EncodeToString(bytes.Repeat([]byte{7}, secretLen)) + "\n"
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	short := writeKey("short.key", 16)
	good := writeKey("good.key", 32)

	cases := []struct {
		name string
		args []string
		want string
	}{
		{"unicast group", []string{"--group", "127.0.0.1:7777"}, "not an IPv4 multicast address"},
		{"port 0", []string{"--group", "239.255.77.77:0"}, "port 0 out of range"},
		{"host name", []string{"--group", "localhost:7777"}, "--group"},
		{"IPv6 group", []string{"--group", "[ff02::1]:7777"}, "only IPv4"},
		{"short key", []string{"--key-file", short}, "secret is 16 bytes, need at least 32"},
		{"missing key", []string{"--key-file", filepath.Join(dir, "nope.key")}, "no such file"},
		{"same key id twice", []string{"--key-file", good, "--key-file", good}, "key id 1 given twice"},
		{"zero timeout", []string{"--timeout", "0s"}, "--timeout must be positive"},
		{"zero hook timeout", []string{"--hook-timeout", "0s"}, "--hook-timeout must be positive"},
		{"bad log format", []string{"--log-format", "xml"}, "--log-format"},
		{"no such interface", []string{"--interface", "nosuchif0"}, `--interface "nosuchif0"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cmd := newListenCmd()
			// Tests that do not choose an interface get lo, and the context is
			// already cancelled: should validation ever let a case through,
			// it joins on loopback only and returns at once instead of hanging.
			args := c.args
			if !strings.Contains(strings.Join(args, " "), "--interface") {
				args = append(args, "--interface", "lo")
			}
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			cmd.SetContext(ctx)
			cmd.SetArgs(args)
			var out bytes.Buffer
			cmd.SetOut(&out)
			cmd.SetErr(&out)
			err := cmd.Execute()
			var ee *exitError
			if !errors.As(err, &ee) || ee.code != exitUsage {
				t.Fatalf("Execute(%q) = %v, want a usage error (exit %d)", args, err, exitUsage)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %q does not mention %q", err, c.want)
			}
		})
	}
}

func TestListenRejectsArguments(t *testing.T) {
	cmd := newListenCmd()
	cmd.SetArgs([]string{"extra"})
	cmd.SetOut(new(bytes.Buffer))
	cmd.SetErr(new(bytes.Buffer))
	if err := cmd.Execute(); err == nil || !strings.Contains(err.Error(), "unknown command") && !strings.Contains(err.Error(), "accepts 0 arg") {
		t.Fatalf("Execute(extra) = %v, want an argument error", err)
	}
}
