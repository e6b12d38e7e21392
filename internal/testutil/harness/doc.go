// Package harness runs stallmon as a user does, for end-to-end tests on the
// host (internal/test/e2e) and inside test VMs (internal/test/vm/guest): a multicast
// group on loopback with a key and a tap that records every heartbeat,
// stallmon subcommands as processes, and their JSON event streams.
package harness
