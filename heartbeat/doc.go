// Package heartbeat holds the stallmon heartbeat wire format (docs/wire.md)
// and a small multicast transport for it.
//
// The format is deliberately strict: every packet has exactly one valid
// encoding, so a decoded packet re-marshals to the same bytes and a receiver
// never has to guess what a sender meant.
package heartbeat
