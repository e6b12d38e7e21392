package heartbeat

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
)

// MinSecretLen is the shortest secret accepted: HMAC-SHA256 gains nothing
// from more than its block size but loses strength below its output size.
const MinSecretLen = 32

// Key is one shared heartbeat secret. ID 0 is reserved for "no key" on the
// wire, so usable ids are 1..255.
type Key struct {
	ID     uint8
	Secret []byte
}

func (k *Key) validate() error {
	if k.ID == 0 {
		return fmt.Errorf("key id 0 is reserved for unauthenticated packets: %w", ErrWeakKey)
	}
	if len(k.Secret) < MinSecretLen {
		return fmt.Errorf("key id %d: secret is %d bytes, need at least %d: %w", k.ID, len(k.Secret), MinSecretLen, ErrWeakKey)
	}
	return nil
}

// KeyRing holds the keys a receiver accepts, by id, so that a new key can be
// rolled out to receivers before senders switch to it. The zero KeyRing is
// empty and means "accept unauthenticated packets only".
type KeyRing struct {
	keys map[uint8]*Key
}

// NewKeyRing builds a ring; ids must be distinct.
func NewKeyRing(keys ...*Key) (KeyRing, error) {
	r := KeyRing{keys: make(map[uint8]*Key, len(keys))}
	for _, k := range keys {
		if k == nil {
			return KeyRing{}, fmt.Errorf("building key ring: nil key: %w", ErrWeakKey)
		}
		if err := k.validate(); err != nil {
			return KeyRing{}, fmt.Errorf("building key ring: %w", err)
		}
		if _, dup := r.keys[k.ID]; dup {
			return KeyRing{}, fmt.Errorf("building key ring: key id %d given twice", k.ID)
		}
		r.keys[k.ID] = k
	}
	return r, nil
}

// Len is the number of keys; 0 means packets are accepted unauthenticated.
func (r KeyRing) Len() int { return len(r.keys) }

// Lookup returns the key with the given id.
func (r KeyRing) Lookup(id uint8) (*Key, bool) {
	k, ok := r.keys[id]
	return k, ok
}

// IDs returns the key ids in ascending order.
func (r KeyRing) IDs() []uint8 {
	ids := make([]uint8, 0, len(r.keys))
	for id := range r.keys {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// LoadKeyFile reads a key file. The format is line based text:
//
//	# comment lines and blank lines are ignored
//	id=1
//	secret=<hex, at least 64 hex digits = 32 bytes>
//
// Both fields are required, once each; anything else is an error. A secret
// can be made with `openssl rand -hex 32`.
//
// As ssh does with private keys, the file is refused unless it is a regular
// file that only its owner can read or write, owned by root or by the
// running user: a secret others can read lets them forge heartbeats.
func LoadKeyFile(path string) (*Key, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading key file: %w", err)
	}
	defer f.Close()
	// Checked on the open file, so the file checked is the file read.
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("reading key file: %w", err)
	}
	if err := checkKeyFileMode(path, st); err != nil {
		return nil, err
	}
	data, err := io.ReadAll(io.LimitReader(f, maxKeyFile+1))
	if err != nil {
		return nil, fmt.Errorf("reading key file: %w", err)
	}
	if len(data) > maxKeyFile {
		return nil, fmt.Errorf("key file %s: over %d bytes", path, maxKeyFile)
	}
	k, err := ParseKey(data)
	if err != nil {
		return nil, fmt.Errorf("key file %s: %w", path, err)
	}
	return k, nil
}

// maxKeyFile bounds what is read: a key file is a few lines.
const maxKeyFile = 64 << 10

func checkKeyFileMode(path string, st os.FileInfo) error {
	if !st.Mode().IsRegular() {
		return fmt.Errorf("key file %s is not a regular file (%v)", path, st.Mode().Type())
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		return fmt.Errorf("key file %s is accessible by group or others (mode %04o); run chmod 600 %s", path, perm, path)
	}
	sys, ok := st.Sys().(*syscall.Stat_t)
	if !ok {
		return fmt.Errorf("key file %s: no owner in its stat", path)
	}
	if euid := os.Geteuid(); sys.Uid != 0 && int(sys.Uid) != euid {
		return fmt.Errorf("key file %s is owned by uid %d, not by root or the running user (uid %d)", path, sys.Uid, euid)
	}
	return nil
}

// ParseKey parses the contents of a key file (see LoadKeyFile).
func ParseKey(data []byte) (*Key, error) {
	var (
		k                  Key
		haveID, haveSecret bool
	)
	sc := bufio.NewScanner(bytes.NewReader(data))
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		name, value, ok := strings.Cut(text, "=")
		name, value = strings.TrimSpace(name), strings.TrimSpace(value)
		switch {
		case !ok:
			return nil, fmt.Errorf("line %d: want name=value", line)
		case name == "id" && !haveID:
			id, err := strconv.ParseUint(value, 10, 8)
			if err != nil || id == 0 {
				return nil, fmt.Errorf("line %d: id must be 1..255, got %q", line, value)
			}
			k.ID, haveID = uint8(id), true
		case name == "secret" && !haveSecret:
			s, err := hex.DecodeString(value)
			if err != nil {
				return nil, fmt.Errorf("line %d: secret is not hex: %w", line, err)
			}
			k.Secret, haveSecret = s, true
		case name == "id" || name == "secret":
			return nil, fmt.Errorf("line %d: %s given twice", line, name)
		default:
			return nil, fmt.Errorf("line %d: unknown field %q", line, name)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("parsing key: %w", err)
	}
	if !haveID || !haveSecret {
		return nil, fmt.Errorf("need both id= and secret= lines")
	}
	if err := k.validate(); err != nil {
		return nil, err
	}
	return &k, nil
}
