package heartbeat

import (
	"crypto/hmac"
	"crypto/sha256"
)

func computeMAC(secret, msg []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write(msg)
	return m.Sum(nil)
}

// verifyMAC compares in constant time so response timing reveals nothing
// about how much of a forged MAC was right.
func verifyMAC(secret, msg, mac []byte) bool {
	return hmac.Equal(computeMAC(secret, msg), mac)
}
