// Package nodefence takes the whole node down when the monitored process
// cannot be killed: a thread stuck in uninterruptible sleep inside a broken
// kernel keeps the process alive, and with it whatever it holds (locks,
// shared storage, a VIP), so the node itself must go. It is opt-in and
// dangerous by design: see docs/fencing.md.
package nodefence

// Fencer is a way to take the node down.
type Fencer interface {
	// Feed is called at every poll while stallmon works; a watchdog
	// fencer pets the watchdog here, so a stallmon that stops polling
	// (hung or killed) also lets the node reset.
	Feed() error
	// Fence takes the node down, or arranges for it to go down soon.
	Fence() error
	// Close disarms where possible (clean shutdown) and releases resources.
	Close() error
	// String names the method for logs.
	String() string
}
