package heartbeat

import (
	"bytes"
	"errors"
	"testing"
)

// FuzzUnmarshal checks that the decoder never panics, that every rejection
// carries one of the exported sentinels, and that whatever it accepts
// re-marshals to the very same bytes (one encoding per packet). The seed
// corpus lives in testdata/fuzz/FuzzUnmarshal.
func FuzzUnmarshal(f *testing.F) {
	for _, v := range vectors {
		f.Add(unhex(f, v.hex))
	}
	signedRing := mustRing(f, testKey1, testKey2)
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, ring := range []KeyRing{{}, signedRing} {
			p, err := Unmarshal(b, ring)
			if err != nil {
				if !matchesSentinel(err) {
					t.Fatalf("error without a sentinel: %v", err)
				}
				continue
			}
			var key *Key
			if p.Authenticated {
				key, _ = ring.Lookup(p.KeyID)
			}
			out, err := p.Marshal(key)
			if err != nil {
				t.Fatalf("decoded packet %+v does not re-marshal: %v", p, err)
			}
			if !bytes.Equal(out, b) {
				t.Fatalf("re-marshal differs:\n in  %x\n out %x", b, out)
			}
		}
	})
}

func matchesSentinel(err error) bool {
	for _, s := range sentinels {
		if errors.Is(err, s) {
			return true
		}
	}
	return false
}
