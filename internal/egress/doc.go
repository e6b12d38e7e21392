// Package egress is the kernel-side dead-man's switch on a watched
// service's own heartbeat (--gate-egress): a cgroup_skb/egress program
// drops the packets the service sends to the gated destinations unless a
// deadline, which the agent extends at each good poll, lies in the future.
// A stallmon that stops, starves or dies extends nothing, so the service
// goes silent to its peers within two poll intervals with no userspace
// action. The link is pinned under the BPF file system, named after the
// node id, so it outlives stallmon; the next stallmon takes it over, and
// Release removes it. See docs/egress.md.
//
// Requires Linux 5.7 (cgroup BPF links); the kernel side is in bpf/, its
// generated bindings in gen/.
package egress
