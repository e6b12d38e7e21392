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
