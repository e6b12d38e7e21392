package heartbeat

import (
	"errors"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"
)

var sentinels = []error{
	ErrTruncated, ErrOversized, ErrBadMagic, ErrBadVersion, ErrBadState,
	ErrUnknownKey, ErrBadMAC, ErrUnauthenticated, ErrMalformed,
}

// checkOnly fails unless err matches want and no other sentinel, so a
// rejection cannot pass for the wrong reason.
func checkOnly(t *testing.T, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("got error %v, want %v", err, want)
	}
	for _, s := range sentinels {
		if s != want && errors.Is(err, s) {
			t.Fatalf("error %v also matches %v", err, s)
		}
	}
}

func TestUnmarshalRejects(t *testing.T) {
	aliveU := mustMarshal(t, vecAlive(), nil)
	aliveK := mustMarshal(t, vecAlive(), testKey1)
	stalledU := mustMarshal(t, vecStalled(), nil)
	stalledK := mustMarshal(t, vecStalled(), testKey1)
	ring := mustRing(t, testKey1)
	none := KeyRing{}
	forger := &Key{ID: 1, Secret: seqBytes(0x40, 32)}
	unknown := &Key{ID: 3, Secret: seqBytes(0x60, 32)}

	// edit copies b and changes it; offsets follow docs/wire.md with a
	// 6-byte node id ("node-a").
	edit := func(b []byte, f func([]byte) []byte) []byte {
		return f(append([]byte(nil), b...))
	}
	set := func(off int, v byte) func([]byte) []byte {
		return func(b []byte) []byte { b[off] = v; return b }
	}
	const nodeOff, nameLenOff = 9, 55 // name length sits after tid and nr
	cases := []struct {
		name string
		b    []byte
		ring KeyRing
		want error
	}{
		{"oversized", append(append([]byte(nil), aliveU...), make([]byte, MaxPacketSize+1-len(aliveU))...), none, ErrOversized},
		{"empty", nil, none, ErrTruncated},
		{"header cut", aliveU[:7], none, ErrTruncated},
		{"alive cut by one", aliveU[:len(aliveU)-1], none, ErrTruncated},
		{"stall record cut", stalledU[:len(stalledU)-9], none, ErrTruncated},
		{"node id cut", aliveU[:nodeOff+3], none, ErrTruncated},
		{"too short for MAC", aliveK[:headerLen+MACSize-1], ring, ErrTruncated},
		{"signed body cut", resign(aliveK[:len(aliveK)-1], testKey1), ring, ErrTruncated},
		{"bad magic", edit(aliveU, set(3, 'X')), none, ErrBadMagic},
		{"version 0", edit(aliveU, set(4, 0)), none, ErrBadVersion},
		{"version 2", edit(aliveU, set(4, 2)), none, ErrBadVersion},
		{"state 0", edit(aliveU, set(5, 0)), none, ErrBadState},
		{"state 5", edit(aliveU, set(5, 5)), none, ErrBadState},
		{"signed state 9", resign(edit(aliveK, set(5, 9)), testKey1), ring, ErrBadState},
		{"key not in ring", sign(aliveU, unknown), ring, ErrUnknownKey},
		{"signed, empty ring", aliveK, none, ErrUnknownKey},
		{"forged with wrong secret", sign(aliveU, forger), ring, ErrBadMAC},
		{"MAC bit flipped", edit(aliveK, func(b []byte) []byte { b[len(b)-1] ^= 1; return b }), ring, ErrBadMAC},
		{"body edited after signing", edit(aliveK, set(30, 0xff)), ring, ErrBadMAC},
		{"state edited after signing", edit(stalledK, set(5, byte(StateAlive))), ring, ErrBadMAC},
		{"MAC and flag stripped, key id left", edit(stalledK[:len(stalledK)-MACSize], set(6, 0)), none, ErrMalformed},
		{"unsigned, ring set", aliveU, ring, ErrUnauthenticated},
		{"unknown flag", edit(aliveU, set(6, 0x02)), none, ErrMalformed},
		{"key id without auth", edit(aliveU, set(7, 1)), none, ErrMalformed},
		{"node id length 0", edit(aliveU, set(8, 0)), none, ErrMalformed},
		{"node id length 65", append(edit(aliveU, set(8, 65)), make([]byte, 59)...), none, ErrMalformed},
		{"node id bad UTF-8", edit(aliveU, set(nodeOff, 0xff)), none, ErrMalformed},
		{"node id control char", edit(aliveU, set(nodeOff, '\n')), none, ErrMalformed},
		{"trailing byte", append(append([]byte(nil), aliveU...), 0), none, ErrMalformed},
		{"signed trailing byte", sign(append(append([]byte(nil), aliveU...), 0), testKey1), ring, ErrMalformed},
		{"syscall name length 33", append(edit(stalledU, set(nameLenOff, 33)), make([]byte, 29)...), none, ErrMalformed},
		{"syscall name bad UTF-8", edit(stalledU, set(nameLenOff+1, 0xc3)), none, ErrMalformed},
		{"elapsed top bit", edit(stalledU, set(len(stalledU)-8, 0x80)), none, ErrMalformed},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, err := Unmarshal(c.b, c.ring)
			checkOnly(t, err, c.want)
			if !reflect.DeepEqual(p, Packet{}) {
				t.Fatalf("rejected packet came back non-zero: %+v", p)
			}
			if !strings.HasPrefix(err.Error(), "decoding packet: ") {
				t.Fatalf("error lacks context: %q", err)
			}
		})
	}
}

func TestUnmarshalAcceptsRotatedKeys(t *testing.T) {
	ring := mustRing(t, testKey1, testKey2)
	for _, k := range []*Key{testKey1, testKey2} {
		p, err := Unmarshal(mustMarshal(t, vecAlive(), k), ring)
		if err != nil {
			t.Fatalf("key %d: %v", k.ID, err)
		}
		if !p.Authenticated || p.KeyID != k.ID {
			t.Fatalf("key %d: got Authenticated=%v KeyID=%d", k.ID, p.Authenticated, p.KeyID)
		}
	}
}

func TestMarshalRefuses(t *testing.T) {
	withStall := vecAlive()
	withStall.Stall.TID = 1
	noNode := vecAlive()
	noNode.NodeID = ""
	longNode := vecAlive()
	longNode.NodeID = strings.Repeat("n", MaxNodeIDLen+1)
	nulNode := vecAlive()
	nulNode.NodeID = "a\x00b"
	badState := vecAlive()
	badState.State = 0
	longName := vecStalled()
	longName.Stall.Name = strings.Repeat("s", MaxSyscallNameLen+1)
	negElapsed := vecStalled()
	negElapsed.Stall.Elapsed = -time.Second
	cases := []struct {
		name string
		p    Packet
		key  *Key
		want error
	}{
		{"stall on ALIVE", withStall, nil, ErrMalformed},
		{"empty node id", noNode, nil, ErrMalformed},
		{"long node id", longNode, nil, ErrMalformed},
		{"NUL in node id", nulNode, nil, ErrMalformed},
		{"state 0", badState, nil, ErrBadState},
		{"long syscall name", longName, nil, ErrMalformed},
		{"negative elapsed", negElapsed, nil, ErrMalformed},
		{"short secret", vecAlive(), &Key{ID: 1, Secret: make([]byte, MinSecretLen-1)}, ErrWeakKey},
		{"key id 0", vecAlive(), &Key{ID: 0, Secret: make([]byte, MinSecretLen)}, ErrWeakKey},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b, err := c.p.Marshal(c.key)
			if !errors.Is(err, c.want) {
				t.Fatalf("got %v, want %v", err, c.want)
			}
			if b != nil {
				t.Fatalf("got bytes with an error: %x", b)
			}
		})
	}
}

// TestRoundTrip is a property test: any valid packet survives
// Marshal+Unmarshal unchanged, signed or not.
func TestRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	keys := []*Key{nil, testKey1, testKey2}
	for i := range 5000 {
		p := randomPacket(rng)
		key := keys[rng.IntN(len(keys))]
		b, err := p.Marshal(key)
		if err != nil {
			t.Fatalf("#%d Marshal(%+v): %v", i, p, err)
		}
		ring := KeyRing{}
		if key != nil {
			ring = mustRing(t, testKey1, testKey2)
			p.Authenticated, p.KeyID = true, key.ID
		}
		got, err := Unmarshal(b, ring)
		if err != nil {
			t.Fatalf("#%d Unmarshal(%x): %v", i, b, err)
		}
		if !reflect.DeepEqual(got, p) {
			t.Fatalf("#%d round trip:\n got %+v\nwant %+v", i, got, p)
		}
		if len(b) > MaxPacketSize {
			t.Fatalf("#%d: %d bytes exceeds MaxPacketSize", i, len(b))
		}
	}
}

// Multi-byte runes make byte-length limits differ from rune counts.
var textRunes = []rune("abcXYZ019-_.:é€😀")

func randomText(rng *rand.Rand, minLen, maxLen int) string {
	limit := minLen + rng.IntN(maxLen-minLen+1)
	var sb strings.Builder
	for {
		r := textRunes[rng.IntN(len(textRunes))]
		if sb.Len()+len(string(r)) > limit {
			break
		}
		sb.WriteRune(r)
	}
	for sb.Len() < minLen {
		sb.WriteByte('n')
	}
	return sb.String()
}

func randomPacket(rng *rand.Rand) Packet {
	p := Packet{
		State:            State(1 + rng.IntN(4)),
		NodeID:           randomText(rng, 1, MaxNodeIDLen),
		Incarnation:      rng.Uint64(),
		Seq:              rng.Uint64(),
		SendTime:         int64(rng.Uint64()),
		TakeoverDeadline: int64(rng.Uint64()),
	}
	if p.State != StateAlive {
		p.Stall = Stall{
			TID:     rng.Uint32(),
			Syscall: int32(rng.Uint32()),
			Name:    randomText(rng, 0, MaxSyscallNameLen),
			Elapsed: time.Duration(rng.Int64()),
		}
	}
	return p
}

func mustMarshal(t testing.TB, p Packet, k *Key) []byte {
	t.Helper()
	b, err := p.Marshal(k)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestPacketTimes(t *testing.T) {
	p := vecStalled()
	if got := p.Sent().UnixNano(); got != p.SendTime {
		t.Fatalf("Sent() = %d, want %d", got, p.SendTime)
	}
	d, ok := p.Deadline()
	if !ok || d.UnixNano() != p.TakeoverDeadline {
		t.Fatalf("Deadline() = %v, %v; want %d, true", d, ok, p.TakeoverDeadline)
	}
	a := vecAlive()
	if _, ok := a.Deadline(); ok {
		t.Fatal("Deadline() reports a deadline for TakeoverDeadline 0")
	}
}
