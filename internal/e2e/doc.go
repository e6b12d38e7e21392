// Package e2e runs stallmon as a user does, for end-to-end tests on the
// host (cmd/stallmon) and inside test VMs (vmtests/guest): a multicast
// group on loopback with a key and a tap that records every heartbeat,
// stallmon subcommands as processes, and their JSON event streams.
package e2e
