package heartbeat

import "errors"

// Every reason Unmarshal rejects a packet has its own sentinel so that a
// receiver can count rejections by cause with errors.Is.
var (
	ErrTruncated       = errors.New("heartbeat: packet truncated")
	ErrOversized       = errors.New("heartbeat: packet larger than MaxPacketSize")
	ErrBadMagic        = errors.New("heartbeat: bad magic")
	ErrBadVersion      = errors.New("heartbeat: unsupported version")
	ErrBadState        = errors.New("heartbeat: unknown state")
	ErrUnknownKey      = errors.New("heartbeat: unknown key id")
	ErrBadMAC          = errors.New("heartbeat: MAC mismatch")
	ErrUnauthenticated = errors.New("heartbeat: packet not authenticated but a key is required")
	ErrMalformed       = errors.New("heartbeat: malformed packet")
)

// ErrWeakKey is returned for keys whose secret is too short or whose id is 0.
var ErrWeakKey = errors.New("heartbeat: unusable key")
