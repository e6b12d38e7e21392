package waitsite

import "strings"

// The kernel's own unwinder (stack_trace_save_tsk, which bpf_get_task_stack
// calls) already drops every function marked __sched: schedule and its
// timeouts, io_schedule, the mutex, rwsem, rt_mutex and semaphore slow
// paths, wait_for_completion, __wait_on_bit and its bit_wait actions. So a
// stack starts at the function that chose to wait, except for the few
// generic helpers below, which are skipped to reach it. A lock wait
// therefore shows as its caller (a pipe write waiting for the pipe's mutex
// is "pipe"); the lock names are kept for kernels and architectures that
// do show them.

// generic are the wait helpers that say nothing of what is waited for.
var generic = map[string]bool{
	"schedule": true, "__schedule": true, "schedule_timeout": true,
	"schedule_timeout_interruptible": true, "schedule_timeout_killable": true,
	"schedule_timeout_uninterruptible": true, "schedule_timeout_idle": true,
	"schedule_hrtimeout": true, "schedule_hrtimeout_range": true,
	"schedule_hrtimeout_range_clock": true, "schedule_preempt_disabled": true,
	"io_schedule_timeout": true, "preempt_schedule": true, "preempt_schedule_common": true,
	"preempt_schedule_irq": true, "__cond_resched": true, "_cond_resched": true,
	"__switch_to": true, "__switch_to_asm": true, "cpu_switch_to": true,
	"wait_woken": true, "prepare_to_wait": true, "prepare_to_wait_event": true,
	"prepare_to_wait_exclusive": true, "finish_wait": true,
	"do_wait_for_common": true, "__wait_for_common": true, "wait_for_common": true,
	"wait_for_common_io": true, "wait_for_completion": true,
	"wait_for_completion_interruptible": true, "wait_for_completion_killable": true,
	"wait_for_completion_timeout": true, "wait_for_completion_io": true,
	"wait_for_completion_state": true,
	"__wait_on_bit":             true, "__wait_on_bit_lock": true, "out_of_line_wait_on_bit": true,
	"out_of_line_wait_on_bit_lock": true, "out_of_line_wait_on_bit_timeout": true,
	"bit_wait": true, "bit_wait_timeout": true,
}

// sites names the functions that wait for one thing, across the kernels
// stallmon runs on (Debian's 6.1 and 6.12, and 6.18): where a function was
// renamed, every name is here. internal/tracker's TestWaitSites makes the
// common waits for real (sockets, pipes, FIFOs, futexes, poll, sleeps,
// FUSE, userfaultfd, seccomp, io_uring) and checks their class, on the
// host and in the VM tests, so a rename there fails a test; the rest
// (NFS, the block layer, journals, locks) are read from the kernels'
// sources and fail closed if wrong: an unknown name is Other.
var sites = map[string]Class{
	// Sending: a full send buffer (TCP; unix stream and datagram), a
	// datagram receiver's full queue, a connection not yet made.
	"sk_stream_wait_memory": SocketSend, "sock_alloc_send_pskb": SocketSend,
	"sock_alloc_send_skb": SocketSend, "sock_wait_for_wmem": SocketSend,
	"unix_wait_for_peer": SocketSend, "sk_stream_wait_connect": SocketSend,
	// A lingering close (SO_LINGER) waits for the peer to take the
	// unsent data.
	"sk_stream_wait_close": SocketSend,
	// Receiving: data on a stream or datagram socket, a connection to
	// accept.
	"sk_wait_data": SocketRecv, "__skb_wait_for_more_packets": SocketRecv,
	"inet_csk_accept": SocketRecv, "inet_csk_wait_for_connect": SocketRecv,
	"unix_stream_read_generic": SocketRecv, "unix_stream_data_wait": SocketRecv,
	// Pipes and FIFOs: data, room, the other end of a FIFO being opened,
	// splice and tee between pipes. anon_pipe_* are 6.16's names.
	"pipe_read": Pipe, "pipe_write": Pipe, "anon_pipe_read": Pipe, "anon_pipe_write": Pipe,
	"fifo_pipe_read": Pipe, "pipe_wait": Pipe, "pipe_wait_readable": Pipe,
	"pipe_wait_writable": Pipe, "wait_for_partner": Pipe, "wait_for_space": Pipe,
	"splice_from_pipe_next": Pipe, "ipipe_prep": Pipe, "opipe_prep": Pipe,
	// Futexes: futex_wait_queue_me (before 5.16), futex_wait_queue,
	// futex_do_wait (6.17).
	"futex_wait_queue_me": Futex, "futex_wait_queue": Futex, "futex_do_wait": Futex,
	"futex_wait_multiple": Futex, "futex_lock_pi": Futex, "futex_wait_requeue_pi": Futex,
	// Readiness of several fds. ep_poll is inlined into do_epoll_wait
	// where it is static and small.
	"do_sys_poll": Poll, "poll_schedule_timeout": Poll, "do_select": Poll,
	"ep_poll": Poll, "do_epoll_wait": Poll,
	// The page cache (folio and page locks, write-back), the block layer,
	// buffers, journals, dirty page throttling.
	"folio_wait_bit_common": Storage, "__folio_lock": Storage, "__folio_lock_killable": Storage,
	"folio_wait_bit": Storage, "folio_wait_bit_killable": Storage, "folio_wait_writeback": Storage,
	"folio_wait_stable": Storage, "__folio_lock_or_retry": Storage,
	"wait_on_page_bit_common": Storage, "__lock_page": Storage, "__lock_page_killable": Storage,
	"wait_on_page_writeback": Storage, "io_schedule": Storage, "bit_wait_io": Storage,
	"bit_wait_io_timeout": Storage, "blk_mq_get_tag": Storage, "submit_bio_wait": Storage,
	"blk_execute_rq": Storage, "__wait_on_buffer": Storage, "wbt_wait": Storage,
	"rq_qos_wait": Storage, "balance_dirty_pages": Storage, "__filemap_fdatawait_range": Storage,
	"filemap_fdatawait_range": Storage, "wb_wait_for_completion": Storage,
	"__writeback_inodes_sb_nr": Storage, "sync_inodes_sb": Storage,
	// SUNRPC, under NFS (the rest of NFS by prefix, below).
	"rpc_wait_bit_killable": NFS, "__rpc_execute": NFS, "rpc_execute": NFS,
	"rpc_wait_for_completion_task": NFS,
	// A FUSE server's answer (the rest of FUSE by prefix, below).
	"request_wait_answer": FUSE, "__fuse_simple_request": FUSE, "fuse_simple_request": FUSE,
	"handle_userfault":             Userfaultfd,
	"seccomp_do_user_notification": SeccompNotify,
	// Kernel locks, where the unwinder shows them (see above).
	"rwsem_down_read_slowpath": Lock, "rwsem_down_write_slowpath": Lock,
	"__mutex_lock": Lock, "__mutex_lock_slowpath": Lock, "mutex_lock": Lock,
	"rt_mutex_slowlock": Lock, "__rt_mutex_slowlock": Lock, "rt_mutex_slowlock_block": Lock,
	"rtlock_slowlock": Lock, "rtlock_slowlock_locked": Lock, "percpu_rwsem_wait": Lock,
	"__percpu_down_read": Lock, "__down_common": Lock, "__down": Lock,
	"__down_interruptible": Lock, "__down_killable": Lock, "__down_timeout": Lock,
	// Sleeps asked for.
	"do_nanosleep": Sleep, "hrtimer_nanosleep": Sleep, "msleep": Sleep,
	"msleep_interruptible": Sleep, "usleep_range_state": Sleep, "do_cpu_nanosleep": Sleep,
	"alarm_timer_nsleep": Sleep,
	// io_uring: a task waiting for completions, an idle io-wq worker or
	// SQ thread.
	// io_cqring_wait is inlined into __do_sys_io_uring_enter on 6.1;
	// io-wq's worker loop was io_wqe_worker before 6.3.
	"io_cqring_wait": IOUring, "__do_sys_io_uring_enter": IOUring, "io_wq_worker": IOUring,
	"io_wqe_worker": IOUring, "io_sq_thread": IOUring, "io_sqd_handle_event": IOUring,
}

// prefixes classify whole subsystems, after sites and excluded.
var prefixes = []struct {
	prefix string
	class  Class
}{
	{"fuse_", FUSE},
	{"nfs_", NFS}, {"nfs4_", NFS}, {"rpc_", NFS},
	{"jbd2_", Storage}, {"blk_", Storage},
}

// excluded are functions a prefix would misname: a FUSE server's own
// wait for requests on /dev/fuse is a wait for work, not for a FUSE
// server's answer, and the same holds for its io_uring transport.
var excluded = map[string]bool{
	"fuse_dev_do_read": true, "fuse_dev_read": true, "fuse_dev_splice_read": true,
	"fuse_uring_cmd": true,
}

// classifyStack decides a stack's class from its innermost frame that is
// not a generic helper; known[i] is false for a frame no symbol covers,
// which leaves the class Unknown, as does a stack of generic frames only.
func classifyStack(frames []string, known []bool) (Class, string) {
	for i, f := range frames {
		if !known[i] {
			return Unknown, ""
		}
		if c, ok := classify(f); ok {
			return c, baseName(f)
		}
	}
	return Unknown, ""
}

// classify returns the class of a frame's function, and whether the frame
// decides: false for a generic helper, to be skipped.
func classify(name string) (Class, bool) {
	name = baseName(name)
	if generic[name] {
		return None, false
	}
	if c, ok := sites[name]; ok {
		return c, true
	}
	if excluded[name] {
		return Other, true
	}
	for _, p := range prefixes {
		if strings.HasPrefix(name, p.prefix) {
			return p.class, true
		}
	}
	return Other, true
}

// baseName drops the compiler's suffix from a symbol: do_sigtimedwait.isra.0,
// poll_schedule_timeout.constprop.0, foo.cold, foo.llvm.1234.
func baseName(name string) string {
	if i := strings.IndexByte(name, '.'); i > 0 {
		return name[:i]
	}
	return name
}
