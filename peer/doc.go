// Package peer is the receiving side of stallmon heartbeats: a failure
// detector that a Go program in the HA cluster can embed (Detector), and a
// Listener that feeds it from the network and runs a failover hook.
//
// The Detector is pure logic with an injected clock so that its decisions
// can be tested exactly; the Listener owns the goroutines and real time.
package peer
