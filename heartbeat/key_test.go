package heartbeat

import (
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseKey(t *testing.T) {
	secret := hex.EncodeToString(seqBytes(0x10, 32))
	k, err := ParseKey([]byte("# rotation 2024\n\n  id = 7 \nsecret=" + secret + "\n"))
	if err != nil {
		t.Fatalf("ParseKey: %v", err)
	}
	if k.ID != 7 || hex.EncodeToString(k.Secret) != secret {
		t.Fatalf("got id %d secret %x", k.ID, k.Secret)
	}
}

func TestParseKeyRefuses(t *testing.T) {
	secret := hex.EncodeToString(seqBytes(0x10, 32))
	cases := []struct {
		name, text, want string
	}{
		{"short secret", "id=1\nsecret=" + hex.EncodeToString(make([]byte, 31)), "secret is 31 bytes, need at least 32"},
		{"not hex", "id=1\nsecret=zz" + secret, "not hex"},
		{"no id", "secret=" + secret, "need both"},
		{"no secret", "id=1", "need both"},
		{"id 0", "id=0\nsecret=" + secret, "id must be 1..255"},
		{"id 256", "id=256\nsecret=" + secret, "id must be 1..255"},
		{"id twice", "id=1\nid=2\nsecret=" + secret, "given twice"},
		{"unknown field", "id=1\nsecret=" + secret + "\nalgo=md5", "unknown field"},
		{"no equals", "id 1\nsecret=" + secret, "want name=value"},
		{"empty", "", "need both"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			k, err := ParseKey([]byte(c.text))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, %v; want error containing %q", k, err, c.want)
			}
		})
	}
}

func TestLoadKeyFile(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.key")
	if err := os.WriteFile(good, []byte("id=3\nsecret="+hex.EncodeToString(seqBytes(0, 40))+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	k, err := LoadKeyFile(good)
	if err != nil || k.ID != 3 || len(k.Secret) != 40 {
		t.Fatalf("LoadKeyFile = %+v, %v", k, err)
	}

	short := filepath.Join(dir, "short.key")
	if err := os.WriteFile(short, []byte("id=3\nsecret=00112233\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = LoadKeyFile(short)
	if !errors.Is(err, ErrWeakKey) || !strings.Contains(err.Error(), short) {
		t.Fatalf("short secret: got %v, want ErrWeakKey naming the file", err)
	}

	_, err = LoadKeyFile(filepath.Join(dir, "missing.key"))
	if !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing file: got %v, want os.ErrNotExist", err)
	}
}

// A key file others could read, or that someone else owns, is refused
// with a message that says how to fix it, as ssh does.
func TestLoadKeyFileRefusesLooseFiles(t *testing.T) {
	dir := t.TempDir()
	text := []byte("id=3\nsecret=" + hex.EncodeToString(seqBytes(0, 40)) + "\n")
	write := func(name string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, text, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, c := range []struct {
		name string
		mode os.FileMode
		want string
	}{
		{"world-readable", 0o644, "mode 0644); run chmod 600"},
		{"group-readable", 0o640, "mode 0640)"},
		{"group-writable", 0o620, "mode 0620)"},
		{"owner read-only", 0o400, ""},
	} {
		p := write(c.name+".key", c.mode)
		_, err := LoadKeyFile(p)
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s: %v", c.name, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), p)):
			t.Errorf("%s: got %v, want an error naming %s and containing %q", c.name, err, p, c.want)
		}
	}
	if _, err := LoadKeyFile(dir); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("a directory: got %v, want not a regular file", err)
	}

	// Owned by another user: only root can make one, and only a non-root
	// reader is refused it when root owns it, so test the foreign owner.
	if os.Geteuid() == 0 {
		p := write("foreign.key", 0o600)
		if err := os.Chown(p, 4242, 4242); err != nil {
			t.Fatal(err)
		}
		if _, err := LoadKeyFile(p); err == nil || !strings.Contains(err.Error(), "owned by uid 4242") {
			t.Errorf("foreign owner: got %v, want owned by uid 4242", err)
		}
	}
}

func TestNewKeyRing(t *testing.T) {
	r := mustRing(t, testKey2, testKey1)
	if got := r.IDs(); len(got) != 2 || got[0] != 1 || got[1] != 2 {
		t.Fatalf("IDs() = %v, want [1 2]", got)
	}
	if k, ok := r.Lookup(2); !ok || k != testKey2 {
		t.Fatalf("Lookup(2) = %v, %v", k, ok)
	}
	if _, ok := r.Lookup(9); ok {
		t.Fatal("Lookup(9) found a key")
	}
	if _, err := NewKeyRing(testKey1, &Key{ID: 1, Secret: seqBytes(9, 32)}); err == nil {
		t.Fatal("duplicate ids accepted")
	}
	if _, err := NewKeyRing(&Key{ID: 4, Secret: []byte("short")}); !errors.Is(err, ErrWeakKey) {
		t.Fatalf("short secret: got %v, want ErrWeakKey", err)
	}
	if _, err := NewKeyRing(nil); err == nil {
		t.Fatal("nil key accepted")
	}
	if (KeyRing{}).Len() != 0 {
		t.Fatal("zero KeyRing is not empty")
	}
}
