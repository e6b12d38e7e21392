package heartbeat

import (
	"encoding/hex"
	"strings"
	"testing"
)

// seqBytes returns n bytes counting up from start, a recognisable secret.
func seqBytes(start byte, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = start + byte(i)
	}
	return b
}

var (
	testKey1 = &Key{ID: 1, Secret: seqBytes(0x00, 32)}
	testKey2 = &Key{ID: 2, Secret: seqBytes(0x20, 32)}
)

func mustRing(t testing.TB, keys ...*Key) KeyRing {
	t.Helper()
	r, err := NewKeyRing(keys...)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// unhex decodes hex written with spaces between fields for readability.
func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil {
		t.Fatalf("bad test hex: %v", err)
	}
	return b
}

// resign replaces the MAC of an authenticated packet after a test edits its
// body, so the edit reaches the checks behind the MAC.
func resign(b []byte, k *Key) []byte {
	body := append([]byte(nil), b[:len(b)-MACSize]...)
	return append(body, computeMAC(k.Secret, body)...)
}

// sign turns an unauthenticated packet into one signed with k.
func sign(b []byte, k *Key) []byte {
	body := append([]byte(nil), b...)
	body[6] |= flagAuthenticated
	body[7] = k.ID
	return append(body, computeMAC(k.Secret, body)...)
}
