//go:build ignore

// stallmon's egress gate: a dead-man's switch on the watched service's own
// heartbeat. Packets the service sends to a gated destination leave the
// host only while the deadline the agent extends at each good poll lies in
// the future. Nothing else is touched: other destinations, and other
// processes' packets to the same destination, always pass.
//
// The hook is cgroup_skb/egress: it runs for every packet a socket of the
// cgroup sends, connected or not, UDP or TCP, IPv4 or IPv6, and for the
// looped-back copy of a multicast datagram (ip_mc_finish_output). It can
// drop silently (return 2: drop with congestion notification, which UDP
// turns into a successful send, or ENOBUFS on a socket with IP_RECVERR), where the sock_addr sendmsg hooks could
// only fail the send with EPERM, and never see connected sockets.

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD
#define IPPROTO_TCP 6
#define IPPROTO_UDP 17
#define AF_INET 2
#define AF_INET6 10

enum egress_limits {
	MAX_DESTS = 16,
};

// verdict is what the program returns: bit 0 passes, bit 1 asks for
// congestion notification, which turns a drop into a send that succeeds.
enum egress_verdict {
	VERDICT_PASS = 1,
	VERDICT_DROP_QUIET = 2,
};

// dest is one gated destination: family 4 or 6, the L4 protocol, the
// address (IPv4 in the first 4 bytes) and the port, both in network order.
struct dest {
	__u8 family;
	__u8 proto;
	__be16 port;
	__u8 addr[16];
};

// match_cookies is set when the gate is attached above the service's own
// cgroup (--pid, --tree): then only the sockets the agent found in the
// service's file tables are gated, by socket cookie, which identifies the
// socket whatever context the packet is sent from (a TCP segment sent
// from softirq runs with some other task current).
volatile const __u8 match_cookies;

// dests maps each gated destination to its counter's index.
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_DESTS);
	__type(key, struct dest);
	__type(value, __u32);
} dests SEC(".maps");

// dropped counts, per destination index, the packets held back.
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, MAX_DESTS);
	__type(key, __u32);
	__type(value, __u64);
} dropped SEC(".maps");

// deadline is CLOCK_MONOTONIC in ns until which packets may pass. It starts
// at 0: closed until the agent vouches for the service.
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} deadline SEC(".maps");

// owned holds the cookies of the service's sockets, under match_cookies:
// entered by the agent's scan of the service's file tables (sockets that
// existed before the gate) and by own_sock_create (sockets made since),
// removed by own_sock_release. Room for a busy server's connections;
// allocated as entered, not up front.
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1 << 18);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u64);
	__type(value, __u8);
} owned SEC(".maps");

// targets holds the tgids of the service's processes, under
// match_cookies: the pid, and for --tree the processes the agent's last
// scan found below it. A socket one of them creates is the service's.
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1 << 15);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u32);
	__type(value, __u8);
} targets SEC(".maps");

struct dest *unused_dest __attribute__((unused));
enum egress_limits *unused_limits __attribute__((unused));

// parse fills d from the packet's headers; 0 when it is nothing to gate.
static __always_inline int parse(struct __sk_buff *skb, struct dest *d)
{
	__u32 l4;

	if (skb->protocol == bpf_htons(ETH_P_IP)) {
		struct iphdr ip;

		if (bpf_skb_load_bytes(skb, 0, &ip, sizeof(ip)))
			return 0;
		d->family = 4;
		d->proto = ip.protocol;
		__builtin_memcpy(d->addr, &ip.daddr, 4);
		// The hook runs before the IP layer fragments a datagram
		// (ip_finish_output): a later fragment here was built by a raw
		// socket, carries no port, and is not the service's heartbeat.
		if (ip.frag_off & bpf_htons(0x1fff))
			return 0;
		l4 = ip.ihl * 4;
	} else if (skb->protocol == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr ip6;

		if (bpf_skb_load_bytes(skb, 0, &ip6, sizeof(ip6)))
			return 0;
		d->family = 6;
		d->proto = ip6.nexthdr;
		__builtin_memcpy(d->addr, &ip6.daddr, 16);
		l4 = sizeof(ip6);
	} else {
		return 0;
	}
	if (d->proto != IPPROTO_UDP && d->proto != IPPROTO_TCP)
		return 0;
	if (bpf_skb_load_bytes(skb, l4 + 2, &d->port, sizeof(d->port)))
		return 0;
	return 1;
}

SEC("cgroup_skb/egress")
int gate_egress(struct __sk_buff *skb)
{
	struct dest d = {};
	__u32 zero = 0;
	__u32 *idx;
	__u64 *until, *n;

	// While the agent vouches for the service every packet passes,
	// whoever sends it: the healthy case costs a clock read and a lookup.
	until = bpf_map_lookup_elem(&deadline, &zero);
	if (until && bpf_ktime_get_ns() < *until)
		return VERDICT_PASS;
	if (!parse(skb, &d))
		return VERDICT_PASS;
	idx = bpf_map_lookup_elem(&dests, &d);
	if (!idx)
		return VERDICT_PASS;
	if (match_cookies) {
		__u64 cookie = bpf_get_socket_cookie(skb);

		if (!bpf_map_lookup_elem(&owned, &cookie))
			return VERDICT_PASS;
	}
	n = bpf_map_lookup_elem(&dropped, idx);
	if (n)
		*n += 1;
	return VERDICT_DROP_QUIET;
}

// gated_kind is whether sk is a socket whose packets the gate judges: an
// IPv4 or IPv6 UDP or TCP socket. Others never reach a gated destination
// and need no place in owned.
static __always_inline int gated_kind(struct bpf_sock *sk)
{
	return (sk->family == AF_INET || sk->family == AF_INET6) &&
	       (sk->protocol == IPPROTO_UDP || sk->protocol == IPPROTO_TCP);
}

// own_sock_create enters, at its creation, a socket one of the service's
// processes makes: a socket made, used and closed between two scans of
// the file tables (one per heartbeat) would otherwise never be held. It
// never refuses a socket.
SEC("cgroup/sock_create")
int own_sock_create(struct bpf_sock *sk)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	__u64 cookie;
	__u8 one = 1;

	if (!match_cookies || !gated_kind(sk))
		return 1;
	if (!bpf_map_lookup_elem(&targets, &tgid))
		return 1;
	cookie = bpf_get_socket_cookie(sk);
	// A full map leaves this socket ungated: the agent's scan enters
	// it later, and reports the map full (egress_scan_failed).
	bpf_map_update_elem(&owned, &cookie, &one, BPF_ANY);
	return 1;
}

// own_sock_release forgets a socket as it is released, so that sockets
// made one per send do not fill owned. Whoever closes it: a cookie is
// never reused, so removing one that was not entered costs a lookup.
SEC("cgroup/sock_release")
int own_sock_release(struct bpf_sock *sk)
{
	__u64 cookie;

	if (!match_cookies || !gated_kind(sk))
		return 1;
	cookie = bpf_get_socket_cookie(sk);
	bpf_map_delete_elem(&owned, &cookie);
	return 1;
}
