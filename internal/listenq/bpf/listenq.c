//go:build ignore

// stallmon's view of a watched service's listening sockets: an iter/task_file
// program that writes one record per listening TCP or unix stream socket
// in the files of the processes in targets (and, when asked, per connected
// TCP socket holding unread data). It reads the kernel's own
// counters (the accept queue's length and limit) and a mark that moves
// whenever the service accepts, so that userspace can tell connections
// waiting for a service that does not accept from a service that accepts
// slowly. Nothing here can block: the iterator walks the file table under
// RCU and every read is a CO-RE read of a socket the file holds.

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define S_IFMT 00170000
#define S_IFSOCK 0140000
#define AF_UNIX 1
#define AF_INET 2
#define AF_INET6 10
#define SOCK_STREAM 1
#define IPPROTO_TCP 6
#define IPPROTO_MPTCP 262
// TCP_LISTEN is also the state af_unix gives a listening socket.
#define LISTEN_STATE 10

enum listen_limits {
	MAX_TARGETS = 4096,
	PATH_LEN = 108, // sizeof(sockaddr_un.sun_path)
	PATH_BUF = 128, // a power of two, so the verifier sees the read bounded
};

enum listen_kind {
	KIND_TCP = 1,
	KIND_UNIX = 2,
};

// listen_rec is one listening socket of one process, or with connected
// set one connected TCP socket with unread data: queued then counts its
// readable bytes, and the mark moves when the service reads (conn_tcp).
//
// For a listener: ino is the socket's
// inode number, the same for every process that shares the socket. The
// mark moves when the service takes a connection off the queue: for TCP
// the oldest queued request and the initial sequence numbers of its
// handshake (random per connection, so a request allocated where an
// accepted one was freed still differs); for unix stream the oldest
// queued skb, its embryo socket and the connecting socket's inode number.
struct listen_rec {
	__u32 tgid;
	__u32 fd;
	__u64 ino;
	__u64 mark[3];
	__u32 queued;
	__u32 limit;
	__u8 kind;
	__u8 family;
	__be16 port;
	__u8 addr[16];
	__u32 path_len; // bytes of the unix address's path, 0 if unbound
	__u8 path[PATH_BUF];
	__u8 connected;
};

// Keeps listen_rec in the object's BTF, which bpf2go reads the Go type from.
const struct listen_rec *unused_listen_rec __attribute__((unused));

// targets holds the watched processes (tgid -> 1). With the kernel's pid
// filter the iterator visits one process anyway; without it, the host.
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_TARGETS);
	__type(key, __u32);
	__type(value, __u8);
} targets SEC(".maps");

// want_connected is set by userspace when the rule judges connected TCP
// sockets too (by_socket: all); listeners alone otherwise, so
// that the default rule's scan reads no more than it needs.
__u8 want_connected = 0;

static __always_inline void inet_local(struct sock *sk, struct listen_rec *l)
{
	struct inet_sock *inet = (struct inet_sock *)sk;
	l->port = BPF_CORE_READ(inet, inet_sport);
	if (l->family == AF_INET) {
		__u32 a = BPF_CORE_READ(sk, __sk_common.skc_rcv_saddr);
		__builtin_memcpy(l->addr, &a, 4);
	} else {
		BPF_CORE_READ_INTO(&l->addr, sk, __sk_common.skc_v6_rcv_saddr.in6_u.u6_addr8);
	}
}

static __always_inline void tcp_mark(struct sock *sk, struct listen_rec *l)
{
	struct inet_connection_sock *icsk = (struct inet_connection_sock *)sk;
	struct request_sock *head = BPF_CORE_READ(icsk, icsk_accept_queue.rskq_accept_head);
	l->mark[0] = (__u64)head;
	if (head) {
		struct tcp_request_sock *treq = (struct tcp_request_sock *)head;
		l->mark[1] = BPF_CORE_READ(treq, rcv_isn);
		l->mark[2] = BPF_CORE_READ(treq, snt_isn);
	}
	inet_local(sk, l);
}

static __always_inline void unix_path(struct sock *sk, struct listen_rec *l)
{
	struct unix_address *ua = BPF_CORE_READ((struct unix_sock *)sk, addr);
	if (!ua)
		return;
	int len = BPF_CORE_READ(ua, len) - (int)sizeof(__u16);
	if (len <= 0)
		return;
	if (len > PATH_LEN)
		len = PATH_LEN;
	l->path_len = len;
	bpf_probe_read_kernel(l->path, len & (PATH_BUF - 1), &ua->name[0].sun_path);
}

static __always_inline void unix_mark(struct sock *sk, struct listen_rec *l)
{
	struct sk_buff *head = BPF_CORE_READ(sk, sk_receive_queue.next);
	// An empty queue's list points at the queue itself.
	if ((void *)head == (void *)&sk->sk_receive_queue)
		head = NULL;
	l->mark[0] = (__u64)head;
	if (head) {
		struct sock *embryo = BPF_CORE_READ(head, sk);
		l->mark[1] = (__u64)embryo;
		struct sock *client = embryo ? BPF_CORE_READ((struct unix_sock *)embryo, peer) : NULL;
		// The connecting socket's inode number: a new one for every
		// socket made, where freed buffers and sockets are soon
		// reused at the same addresses (serial clients of a serial
		// server). A client that closed its end has none left.
		__u64 ino = client ? BPF_CORE_READ(client, sk_socket, file, f_inode, i_ino) : 0;
		l->mark[2] = ino ? ino : (__u64)client;
	}
	unix_path(sk, l);
}

// before is the kernel's before(): seq1 comes before seq2, modulo 2^32.
static __always_inline bool before(__u32 seq1, __u32 seq2)
{
	return (__s32)(seq1 - seq2) < 0;
}

// conn_tcp fills l for a connected TCP socket: the bytes received that a
// read would return, and copied_seq, the sequence number the service has
// read up to, which moves with every read and never returns to a value
// within the 4 GiB that follow. Returns 0 when nothing waits that the
// kernel would call readable (tcp_inq and tcp_poll, the same in 6.1 and
// 6.18): a sequence number that no read returns is no work waiting, nor
// is data below SO_RCVLOWAT, which poll and epoll do not report.
static __always_inline int conn_tcp(struct sock *sk, struct listen_rec *l)
{
	struct tcp_sock *tp = (struct tcp_sock *)sk;
	__u8 state = BPF_CORE_READ(sk, __sk_common.skc_state);
	if (state == TCP_SYN_SENT || state == TCP_SYN_RECV)
		return 0;
	__u32 copied = BPF_CORE_READ(tp, copied_seq);
	__u32 rcv_nxt = BPF_CORE_READ(tp, rcv_nxt);
	__u32 queued = rcv_nxt - copied;
	if (!queued || queued > (1U << 31))
		return 0;
	unsigned long flags = BPF_CORE_READ(sk, __sk_common.skc_flags);
	// The peer's FIN takes one sequence number, whatever the state the
	// connection went on to (CLOSE_WAIT, LAST_ACK, CLOSING, or CLOSE
	// after a half-close): SOCK_DONE says it was received.
	bool fin = flags & (1UL << bpf_core_enum_value(enum sock_flags, SOCK_DONE));
	if (fin)
		queued--;
	// An urgent byte not delivered in line (no SO_OOBINLINE) takes one
	// sequence number that normal reads skip, read with MSG_OOB or not:
	// the byte at urg_seq, once copied_seq has reached it.
	if (!(flags & (1UL << bpf_core_enum_value(enum sock_flags, SOCK_URGINLINE))) &&
	    BPF_CORE_READ(tp, urg_data)) {
		__u32 urg = BPF_CORE_READ(tp, urg_seq);
		if (!before(urg, copied) && before(urg, rcv_nxt) && queued)
			queued--;
	}
	if (!queued)
		return 0;
	// Below SO_RCVLOWAT poll does not call the socket readable (unless
	// the peer closed: then the rest is readable), and the service waits
	// for the rest of its frame. The kernel also calls it readable under
	// memory pressure or a receive window below one segment; those are
	// not counted, which can only miss a stall, never flag one.
	int lowat = BPF_CORE_READ(sk, sk_rcvlowat);
	if (!fin && lowat > 1 && queued < (__u32)lowat)
		return 0;
	l->kind = KIND_TCP;
	l->queued = queued;
	l->limit = BPF_CORE_READ(sk, sk_rcvbuf);
	l->mark[0] = copied;
	inet_local(sk, l);
	return 1;
}

// connected_rec fills l for a socket that is not listening: 1 when it is
// a connected TCP socket holding unread data. Unix stream, unix datagram
// and UDP sockets keep no count of reads (their only marks, the queue's
// buffers, repeat when a freed buffer's address is reused: a steady
// reader one message behind looked stuck), so they are not judged.
static __always_inline int connected_rec(struct sock *sk, struct listen_rec *l)
{
	l->connected = 1;
	if (l->family != AF_INET && l->family != AF_INET6)
		return 0;
	if (BPF_CORE_READ(sk, sk_protocol) != IPPROTO_TCP || BPF_CORE_READ(sk, sk_type) != SOCK_STREAM)
		return 0;
	return conn_tcp(sk, l);
}

SEC("iter/task_file")
int listeners(struct bpf_iter__task_file *ctx)
{
	struct task_struct *task = ctx->task;
	struct file *file = ctx->file;
	if (!task || !file)
		return 0;
	__u32 tgid = task->tgid;
	if (!bpf_map_lookup_elem(&targets, &tgid))
		return 0;
	struct inode *inode = file->f_inode;
	if (!inode || (BPF_CORE_READ(inode, i_mode) & S_IFMT) != S_IFSOCK)
		return 0;
	struct socket *sock = BPF_CORE_READ(file, private_data);
	if (!sock)
		return 0;
	struct sock *sk = BPF_CORE_READ(sock, sk);
	if (!sk)
		return 0;
	struct listen_rec l = {};
	l.tgid = tgid;
	l.fd = ctx->fd;
	l.ino = BPF_CORE_READ(inode, i_ino);
	l.family = BPF_CORE_READ(sk, __sk_common.skc_family);
	if (BPF_CORE_READ(sk, __sk_common.skc_state) != LISTEN_STATE) {
		if (want_connected && connected_rec(sk, &l))
			bpf_seq_write(ctx->meta->seq, &l, sizeof(l));
		return 0;
	}
	if (BPF_CORE_READ(sk, sk_type) != SOCK_STREAM)
		return 0;
	switch (l.family) {
	case AF_INET:
	case AF_INET6:
		switch (BPF_CORE_READ(sk, sk_protocol)) {
		case IPPROTO_MPTCP:
			// An MPTCP listener (Go's default since 1.24) queues its
			// connections on its first subflow, a TCP listener.
			if (!bpf_core_type_exists(struct mptcp_sock))
				return 0;
			sk = BPF_CORE_READ((struct mptcp_sock *)sk, first);
			if (!sk || BPF_CORE_READ(sk, __sk_common.skc_state) != LISTEN_STATE)
				return 0;
			break;
		case IPPROTO_TCP:
			break;
		default:
			return 0;
		}
		l.kind = KIND_TCP;
		l.queued = BPF_CORE_READ(sk, sk_ack_backlog);
		l.limit = BPF_CORE_READ(sk, sk_max_ack_backlog);
		tcp_mark(sk, &l);
		break;
	case AF_UNIX:
		// af_unix counts its queue in the receive queue (one skb per
		// connection waiting), not in sk_ack_backlog.
		l.kind = KIND_UNIX;
		l.queued = BPF_CORE_READ(sk, sk_receive_queue.qlen);
		l.limit = BPF_CORE_READ(sk, sk_max_ack_backlog);
		unix_mark(sk, &l);
		break;
	default:
		return 0;
	}
	bpf_seq_write(ctx->meta->seq, &l, sizeof(l));
	return 0;
}
