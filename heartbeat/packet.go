package heartbeat

import (
	"encoding/binary"
	"fmt"
	"math"
	"time"
	"unicode"
	"unicode/utf8"
)

// Wire constants. See docs/wire.md for the byte layout.
const (
	Magic         = "STMN"
	Version uint8 = 1
	// MaxPacketSize bounds what a receiver reads and decodes. The largest valid
	// v1 packet is 186 bytes; the slack leaves room for later versions without
	// letting a sender make receivers allocate much.
	MaxPacketSize     = 512
	MaxNodeIDLen      = 64
	MaxSyscallNameLen = 32
	MACSize           = 32 // HMAC-SHA256

	flagAuthenticated uint8 = 1 << 0
	knownFlags              = flagAuthenticated

	headerLen = 8 // magic, version, state, flags, key id
)

// State is what the sending agent says about its target process.
type State uint8

const (
	StateAlive   State = 1
	StateStalled State = 2
	StateFenced  State = 3
	StateLeaving State = 4
)

func (s State) String() string {
	switch s {
	case StateAlive:
		return "ALIVE"
	case StateStalled:
		return "STALLED"
	case StateFenced:
		return "FENCED"
	case StateLeaving:
		return "LEAVING"
	}
	return fmt.Sprintf("State(%d)", uint8(s))
}

// Valid reports whether s is a state this version of the format defines.
func (s State) Valid() bool { return s >= StateAlive && s <= StateLeaving }

// Stall describes the stuck syscall. It is on the wire only when the state is
// not ALIVE.
type Stall struct {
	TID     uint32
	Syscall int32 // Name's number in the sender architecture's native table, -1 if none
	Name    string
	Elapsed time.Duration
}

// Packet is one decoded heartbeat.
type Packet struct {
	State State
	// Authenticated and KeyID are set by Unmarshal. Marshal ignores them: the
	// key passed to Marshal decides.
	Authenticated bool
	KeyID         uint8
	NodeID        string
	// Incarnation changes on every agent or target start and only grows, so
	// receivers can tell a restart from a replay.
	Incarnation uint64
	Seq         uint64
	// SendTime and TakeoverDeadline are unix nanoseconds, kept as integers so
	// that every value round-trips exactly. TakeoverDeadline 0 means none.
	SendTime         int64
	TakeoverDeadline int64
	Stall            Stall
}

// Sent returns SendTime as a time.Time.
func (p *Packet) Sent() time.Time { return time.Unix(0, p.SendTime) }

// Deadline returns the takeover deadline, and false when the sender gave none.
func (p *Packet) Deadline() (time.Time, bool) {
	if p.TakeoverDeadline == 0 {
		return time.Time{}, false
	}
	return time.Unix(0, p.TakeoverDeadline), true
}

// Marshal encodes p, signed with key when key is not nil.
func (p *Packet) Marshal(key *Key) ([]byte, error) {
	if err := p.validate(); err != nil {
		return nil, fmt.Errorf("encoding packet: %w", err)
	}
	var flags, keyID uint8
	if key != nil {
		if err := key.validate(); err != nil {
			return nil, fmt.Errorf("encoding packet: %w", err)
		}
		flags |= flagAuthenticated
		keyID = key.ID
	}
	b := make([]byte, 0, 128)
	b = append(b, Magic...)
	b = append(b, Version, uint8(p.State), flags, keyID)
	b = append(b, uint8(len(p.NodeID)))
	b = append(b, p.NodeID...)
	b = binary.BigEndian.AppendUint64(b, p.Incarnation)
	b = binary.BigEndian.AppendUint64(b, p.Seq)
	b = binary.BigEndian.AppendUint64(b, uint64(p.SendTime))
	b = binary.BigEndian.AppendUint64(b, uint64(p.TakeoverDeadline))
	if p.State != StateAlive {
		b = binary.BigEndian.AppendUint32(b, p.Stall.TID)
		b = binary.BigEndian.AppendUint32(b, uint32(p.Stall.Syscall))
		b = append(b, uint8(len(p.Stall.Name)))
		b = append(b, p.Stall.Name...)
		b = binary.BigEndian.AppendUint64(b, uint64(p.Stall.Elapsed))
	}
	if key != nil {
		b = append(b, computeMAC(key.Secret, b)...)
	}
	return b, nil
}

// validate enforces on the sending side exactly what Unmarshal enforces, so
// a sender cannot emit a packet its peers would drop.
func (p *Packet) validate() error {
	if !p.State.Valid() {
		return fmt.Errorf("state %d: %w", uint8(p.State), ErrBadState)
	}
	if err := checkText("node id", p.NodeID, 1, MaxNodeIDLen); err != nil {
		return err
	}
	if p.State == StateAlive {
		if p.Stall != (Stall{}) {
			return fmt.Errorf("stall record on an ALIVE packet: %w", ErrMalformed)
		}
		return nil
	}
	if err := checkText("syscall name", p.Stall.Name, 0, MaxSyscallNameLen); err != nil {
		return err
	}
	if p.Stall.Elapsed < 0 {
		return fmt.Errorf("negative stall elapsed %v: %w", p.Stall.Elapsed, ErrMalformed)
	}
	return nil
}

// checkText refuses control characters too: node ids end up in logs and in
// the environment of failover hooks, where a NUL or newline would do harm.
// CheckNodeID reports whether id can go on the wire as a node id.
func CheckNodeID(id string) error { return checkText("node id", id, 1, MaxNodeIDLen) }

func checkText(what, s string, minLen, maxLen int) error {
	if len(s) < minLen || len(s) > maxLen {
		return fmt.Errorf("%s is %d bytes, want %d..%d: %w", what, len(s), minLen, maxLen, ErrMalformed)
	}
	if !utf8.ValidString(s) {
		return fmt.Errorf("%s is not valid UTF-8: %w", what, ErrMalformed)
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return fmt.Errorf("%s contains control character %U: %w", what, r, ErrMalformed)
		}
	}
	return nil
}

// Unmarshal decodes and checks one packet. With an empty ring it accepts
// only unauthenticated packets (an authenticated one cannot be verified);
// with a non-empty ring it accepts only packets signed by a key in it.
func Unmarshal(b []byte, keys KeyRing) (Packet, error) {
	p, err := decode(b, keys)
	if err != nil {
		return Packet{}, fmt.Errorf("decoding packet: %w", err)
	}
	return p, nil
}

func decode(b []byte, keys KeyRing) (Packet, error) {
	if len(b) > MaxPacketSize {
		return Packet{}, fmt.Errorf("%d bytes, limit %d: %w", len(b), MaxPacketSize, ErrOversized)
	}
	if len(b) < headerLen {
		return Packet{}, fmt.Errorf("%d bytes, header needs %d: %w", len(b), headerLen, ErrTruncated)
	}
	if string(b[:4]) != Magic {
		return Packet{}, fmt.Errorf("magic %q: %w", b[:4], ErrBadMagic)
	}
	if b[4] != Version {
		return Packet{}, fmt.Errorf("version %d, want %d: %w", b[4], Version, ErrBadVersion)
	}
	flags, keyID := b[6], b[7]
	if flags&^knownFlags != 0 {
		return Packet{}, fmt.Errorf("unknown flags %#02x: %w", flags&^knownFlags, ErrMalformed)
	}
	var p Packet
	body := b
	// The MAC is checked before anything past the header is interpreted, so
	// a forger learns nothing from which later check fails.
	if flags&flagAuthenticated != 0 {
		if len(b) < headerLen+MACSize {
			return Packet{}, fmt.Errorf("%d bytes, too short for a MAC: %w", len(b), ErrTruncated)
		}
		key, ok := keys.Lookup(keyID)
		if !ok {
			return Packet{}, fmt.Errorf("key id %d: %w", keyID, ErrUnknownKey)
		}
		body = b[:len(b)-MACSize]
		if !verifyMAC(key.Secret, body, b[len(body):]) {
			return Packet{}, fmt.Errorf("key id %d: %w", keyID, ErrBadMAC)
		}
		p.Authenticated, p.KeyID = true, keyID
	} else {
		if keyID != 0 {
			return Packet{}, fmt.Errorf("key id %d on an unauthenticated packet: %w", keyID, ErrMalformed)
		}
		if keys.Len() > 0 {
			return Packet{}, ErrUnauthenticated
		}
	}

	p.State = State(b[5])
	if !p.State.Valid() {
		return Packet{}, fmt.Errorf("state %d: %w", b[5], ErrBadState)
	}
	r := reader{b: body, off: headerLen}
	nodeLen := int(r.u8())
	if r.err == nil && (nodeLen < 1 || nodeLen > MaxNodeIDLen) {
		return Packet{}, fmt.Errorf("node id length %d, want 1..%d: %w", nodeLen, MaxNodeIDLen, ErrMalformed)
	}
	p.NodeID = string(r.bytes(nodeLen))
	p.Incarnation = r.u64()
	p.Seq = r.u64()
	p.SendTime = int64(r.u64())
	p.TakeoverDeadline = int64(r.u64())
	if p.State != StateAlive {
		p.Stall.TID = r.u32()
		p.Stall.Syscall = int32(r.u32())
		nameLen := int(r.u8())
		if r.err == nil && nameLen > MaxSyscallNameLen {
			return Packet{}, fmt.Errorf("syscall name length %d, limit %d: %w", nameLen, MaxSyscallNameLen, ErrMalformed)
		}
		p.Stall.Name = string(r.bytes(nameLen))
		elapsed := r.u64()
		if r.err == nil && elapsed > math.MaxInt64 {
			return Packet{}, fmt.Errorf("stall elapsed %d ns out of range: %w", elapsed, ErrMalformed)
		}
		p.Stall.Elapsed = time.Duration(elapsed)
	}
	if r.err != nil {
		return Packet{}, r.err
	}
	if r.off != len(body) {
		return Packet{}, fmt.Errorf("%d trailing bytes: %w", len(body)-r.off, ErrMalformed)
	}
	if err := p.validate(); err != nil {
		return Packet{}, err
	}
	return p, nil
}

// reader keeps the first error so decode can read a whole record and check once.
type reader struct {
	b   []byte
	off int
	err error
}

func (r *reader) take(n int) []byte {
	if r.err != nil {
		return nil
	}
	if n > len(r.b)-r.off {
		r.err = fmt.Errorf("need %d bytes at offset %d, have %d: %w", n, r.off, len(r.b)-r.off, ErrTruncated)
		return nil
	}
	s := r.b[r.off : r.off+n]
	r.off += n
	return s
}

func (r *reader) bytes(n int) []byte { return r.take(n) }

func (r *reader) u8() uint8 {
	if s := r.take(1); s != nil {
		return s[0]
	}
	return 0
}

func (r *reader) u32() uint32 {
	if s := r.take(4); s != nil {
		return binary.BigEndian.Uint32(s)
	}
	return 0
}

func (r *reader) u64() uint64 {
	if s := r.take(8); s != nil {
		return binary.BigEndian.Uint64(s)
	}
	return 0
}
