package e2e

import (
	"bytes"
	"context"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
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
			// Cases that do not choose an interface get lo: should
			// validation ever let one through, it joins on loopback only,
			// and is stopped at the deadline.
			args := c.args
			if !strings.Contains(strings.Join(args, " "), "--interface") {
				args = append(args, "--interface", "lo")
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			code, stderr := runStallmonContext(t, ctx, append([]string{"listen"}, args...)...)
			if code != exitUsage {
				t.Fatalf("stallmon listen %q: exit %d (%q), want a usage error (exit %d)", args, code, stderr, exitUsage)
			}
			if !strings.Contains(stderr, c.want) {
				t.Fatalf("error %q does not mention %q", stderr, c.want)
			}
		})
	}
}

func TestListenRejectsArguments(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	code, stderr := runStallmonContext(t, ctx, "listen", "extra")
	if code != exitUsage || !strings.Contains(stderr, "unknown command") && !strings.Contains(stderr, "accepts 0 arg") {
		t.Fatalf("stallmon listen extra: exit %d, %q; want an argument error", code, stderr)
	}
}
