package event

// Info documents one event for docs/events.md.
type Info struct {
	Name string
	// Who logs it: which stallmon commands.
	Who string
	// Doc says what happened, then the attributes beyond the obvious.
	Doc string
}

// Who logs an event.
const (
	byAgent  = "attach, run"
	byRun    = "run"
	byListen = "listen"
	byAll    = "attach, run, listen"
)

// All is every event, in the order docs/events.md lists them.
var All = []Info{
	{Attached, byAgent, "The tracker is attached and the agent starts judging: `pid`, `tree`, `cgroup`, `bpf_object` (`full` or `minimal`, see kernels.md), `node`, `arch`, `tracker`, `poll_interval_seconds`, `kill`, `heartbeat`, `sinks`."},
	{Stall, byAgent, "A thread broke a rule: `pid`, `tid`, `comm`, `syscall` (`none` outside any syscall), `nr`, `fd`, `fd_kind`, `fs` (the file system of a file), `elapsed_seconds`, `state` (running, runnable, interruptible, killable, uninterruptible, idle, stopped, traced, frozen, dead), `reason` (the rule broken: `over_budget`, `uninterruptible`, `running`, `page_fault` (asleep outside any syscall), `stopped`, `traced`, `frozen`, `dumping_core`, `exiting`, `died_in_syscall`, `vfork_child`, `work_waiting`), `state_seconds` (time in the state, for a state rule), `budget_seconds`, `kill_after_seconds`, and where they apply `fds` (both fds of a two-fd syscall), `abi` (a 32-bit syscall), `kernel_worker` (a thread the kernel made), `since_attach` (in flight before attach: elapsed is a lower bound), `held_before_entry` (the tracker never saw it enter: held before, as by a seccomp user-notification supervisor; elapsed is a lower bound), and for `vfork_child` (a thread waiting in vfork, clone or clone3 for a child stuck in its exec, in D or in a page fault) the child's `child_pid`, `child_comm`, `child_syscall` and `child_state`, `wait` and `stack` (a thread asleep off a CPU: its wait site, class and function, e.g. `fuse request_wait_answer`, and its kernel frames joined by ` | `; see budgets.md#wait-sites), `fd_wait_seconds` (a two-fd syscall judged by the fd it waits on: how long it has waited there), and for `work_waiting` (connections wait in a listening socket's queue and none was accepted for longer than the budget, or with `by_socket: all` readable data waits in a connected TCP socket and nothing was read; only sockets the rule's `only`/`skip` choose; reported on the process's leader and the socket's `fd`) `local_addr` (`127.0.0.1:6379`, `[::1]:80`, a unix path or `@abstract` name), `kind` (`tcp` or `unix`), `socket` (`listening` or `connected`), `queued` (connections; for a connected socket the bytes a read would return), `queue_limit`, `waiting_seconds` and `threads` (the process's threads as `tid:comm:state:syscall`, comma separated, `-` in user space, at most 16)."},
	{DiedInSyscall, byAgent, "A thread exited inside a syscall other than exit or exit_group: the kernel killed it there (an oops). The fields of `stall`, with `in_syscall_seconds` and the `signal` the kernel used."},
	{StallCleared, byAgent, "A stall ended: the fields of `stall`, and `duration_seconds` (at least that long: it ended between two polls)."},
	{HeartbeatStopped, byAgent, "No more ALIVE: `reason` (`stall`, with the stall's `tid`, `syscall`, `elapsed_seconds` and `rule`; `no_fresh_poll`; `thread_unknown`, with a `detail`)."},
	{HeartbeatResumed, byAgent, "ALIVE again (`--late-return=resume`, or a stall that never went out as STALLED): `seq`."},
	{HeartbeatFinal, byAgent, "The last packets of this incarnation, FENCED or LEAVING: `state`, `seq`."},
	{HeartbeatSendFailed, byAgent, "A heartbeat could not be sent: `state`, `err`."},
	{EgressAttached, byAgent, "`--gate-egress`: the gate on the service's own packets to `dest` is attached at `cgroup` and pinned at `pin`; `taken_over` when it took over the link a previous stallmon left, with `open_seconds`, what was left of that stallmon's deadline, which the new gate goes on with. A new gate starts closed. See egress.md."},
	{EgressOpened, byAgent, "The service's packets to `dest` pass again: the agent vouches for the service (first alive poll, or alive again under `--late-return=resume`)."},
	{EgressClosed, byAgent, "The service's packets to `dest` are dropped in the kernel: `reason` is the agent's state (`stalled`, `blind`, `fenced`, `abandoned` when `stallmon run` gives up on its service), or `deadline_passed` (with `closed_seconds`) when the agent came back after its own deadline ran out."},
	{EgressFailed, byAgent, "The gate's deadline could not be written, or not carried over from the gate taken over: `dest`, `err`. The gate closes when its deadline runs out (a taken-over gate starts closed)."},
	{EgressScanFailed, byAgent, "The service's sockets could not all be listed (`--pid`, `--tree`): `dest`, `err`. A socket not yet found is not gated."},
	{EgressReleased, byAgent, "The gate was removed at exit (`--gate-egress-release-on-exit`), the stop having ended on LEAVING or with the service gone: `dest`, `pin`."},
	{EgressKept, byAgent, "`--gate-egress-release-on-exit`, but the stop ended on a stall or in silence: the gate stays pinned, the service's heartbeat held (`stallmon release` removes it): `dest`, `pin`."},
	{Kill, byAgent, "The target is sent SIGKILL (`signal`): the fields of the `stall` it is killed for (`reason` is `late_return` after a late return). Under `run`, also for a cgroup an earlier run, since gone, left with processes in it: `cgroup`, `signal`, `reason` `leftover`, `err` if cgroup.kill failed."},
	{Unkillable, byAgent, "The killed target outlived `--kill-grace`: per stuck thread `pid`, `tid`, `comm`, `syscall`, `state`, `proc_state`, `wchan` and kernel `stack` (`diagnosis_timed_out` when /proc did not answer in time: the diagnoses of one report get two seconds in all); or `pid`, `grace_seconds` and `err` when the wait itself failed. `kill_err` is set when the SIGKILL could not be sent (a failed kill is judged as an unkillable target: the grace is waited out, then this report and `--on-unkillable`)."},
	{LateReturn, byAgent, "A stall that went out as STALLED ended (the fields of `stall`, and `fence`): under `--late-return=fence` the target is killed at once (`fence` true), or, when the rule it broke never kills or under `--no-kill`, reported stalled for the rest of the incarnation (`fence` false)."},
	{StopFence, byAgent, "stallmon was asked to stop while a stall it declared (STALLED is final) was still stuck: the target is killed first, as at kill_after (the fields of the `stall`; then `kill` with `reason` `stop`, and FENCED, or `unkillable` and silence). See wire.md, stopping."},
	{StopStalled, byAgent, "stallmon was asked to stop while a stall it will not kill (a rule that never kills, `--no-kill`, `--late-return=resume`) stood: it ends on STALLED, with no deadline, not LEAVING (the fields of the `stall`)."},
	{StopSilent, byAgent, "stallmon was asked to stop while it could not vouch for the target (`gate`: blind): it ends in silence, not LEAVING, so that peers fail the node over after their timeout."},
	{NodeFence, byAgent, "The node is taken down (`--on-unkillable`): `pid`, `method`, and `err` if that failed."},
	{NodeFenceArmed, byAgent, "`--on-unkillable` armed a fencer at start: `method`, `watchdog_device`, `detail`."},
	{NodeFenceFeedFailed, byAgent, "The watchdog could not be fed: `method`, `err`."},
	{TargetExited, byAgent, "The target is gone: `pid` and `exit_code` or `signal` (a tree: the root's pid, no status; a cgroup: neither, its processes having one status each)."},
	{ExitStatusFailed, byAgent, "The target's exit status could not be read: `err`."},
	{AgentLate, byAgent, "A poll came late (the agent itself was starved): `gap_seconds`. A late poll never kills."},
	{PollFailed, byAgent, "A snapshot failed: `err`. The heartbeat stops once no poll is fresh."},
	{PollRecovered, byAgent, "Snapshots work again: `failed_polls`."},
	{TrackerTampered, byAgent, "Once: a BPF `link` of the tracker (`link_id`) was changed from outside (`change`, e.g. `runs program 912, not the tracker's 907`). The agent stays blind until restarted."},
	{ThreadStarted, byAgent, "At `--log-level debug`: a thread appeared: `pid`, `tid`, `comm`."},
	{ThreadExited, byAgent, "At `--log-level debug`: a thread left: `pid`, `tid`."},
	{ThreadUnknown, byAgent, "A thread entered a syscall the tracker could not record: `pid`, `tid`, `comm`, `syscall`, `unknown_seconds`, `reason`. The agent is blind until its next recorded entry or its exit."},
	{ThreadKnown, byAgent, "A thread that was unknown is recorded again, or `exited`: `pid`, `tid`, `comm`, `unknown_seconds`."},
	{UnrecordedUnmarked, byAgent, "A thread lost its record and the table of such threads was full (`entries`, `reason`): no later entry can show which thread recovered, so the agent stays blind until restarted."},
	{IteratorUnfiltered, byAgent, "The task iterator cannot walk the scope one process at a time (no per-process filter before Linux 6.1; a threaded cgroup, whose processes cgroup.procs does not list): every poll walks every task of the host. `detail`."},
	{ThreadWalkUnavailable, byAgent, "The kernel refused the thread walk (Linux 6.8's open-coded task iterator and trusted function arguments; `err`, the load error's first line): each process is walked per visit, which costs a poll more at thousands of threads."},
	{BPFMinimalLoaded, byAgent, "The tracker loaded its minimal BPF object (`--bpf-features`: `choice`): chosen by the operator, or because the kernel lacks `missing`, features the minimal object replaces (see kernels.md), with the full object's load error's first line (`full_object_err`). It costs more per syscall of the target and per thread a poll lists."},
	{KernelSymbolsUnreadable, byAgent, "The kernel's symbols could not be read at attach (`err`): every wait site is `unknown`, and the rules that use them judge as if it had none (`detail`)."},
	{SelfProtectFailed, byAgent, "stallmon could not lock its memory or lower its OOM score: `err` names the missing capability."},
	{StateDirUnusable, byAgent, "The state directory cannot be made: `dir`, `err`; incarnations follow the clock and node ids are not locked (`detail`)."},
	{NodeNotLocked, byAgent, "The node id's lock could not be taken (other than held by another agent): `node`, `err`."},
	{IncarnationNotPersisted, byAgent, "The incarnation could not be written: `node`, `err`; the clock numbers this run (`detail`)."},
	{Unauthenticated, byAll, "No `--key-file`: heartbeats are sent, or accepted, unauthenticated (`detail`)."},

	{SinkFailed, byAgent, "An integration (`sink`) could not apply a verdict (`state`, `err`): it is retried with the latest verdict."},
	{SinkRecovered, byAgent, "An integration applied a verdict again after failing: `sink`, `state`."},
	{SinkAbandoned, byAgent, "At exit an integration did not finish in time and was left: `sink`, `pending`, `applying`."},
	{SinkCloseFailed, byAgent, "An integration failed to close: `sink`, `err`."},
	{KeepalivedFileWritten, byAgent, "`--keepalived-file` now holds `value` (`state`): `path`."},
	{KeepalivedFileAltered, byAgent, "The keepalived file was changed or removed from outside and is rewritten: `path`, `value`, `state`."},
	{PacemakerAttributeSet, byAgent, "The Pacemaker node attribute was set: `attribute`, `value`, `state`, `took_seconds`."},
	{EtcdLease, byAgent, "The etcd lease was `action` (granted, abandoned, expired, revoked): `lease`, and `ttl_seconds`, `state`, `expires_within_seconds`, `already_expired` or `seconds` as they apply."},
	{EtcdLeaseLost, byAgent, "The etcd lease is gone (`reason`): the key expired with it."},
	{EtcdTTLTooShort, byAgent, "Two healthy verdicts came more than half `--etcd-ttl` apart: `gap_seconds`, `ttl_seconds`, `hint`."},
	{EtcdElected, byAgent, "This node won `--etcd-election`: `election`, `key`."},
	{EtcdDemoted, byAgent, "This node left `--etcd-election`: `election`, `reason`, and the `key` that was deleted."},
	{EtcdCampaignFailed, byAgent, "A step of the campaign failed and is retried: `election`, `step`, `err`."},
	{EtcdCampaignRunningAtClose, byAgent, "At exit the campaign had not ended: `election`."},
	{EtcdHook, byAgent, "`--on-elected` or `--on-demoted` ran: `hook`, and `err` if it failed or timed out."},
	{EtcdHookSkipped, byAgent, "A hook was not run, the sink closing: `hook`, `reason`."},
	{SystemdWatchdogTriggered, byAgent, "`WATCHDOG=trigger` went to systemd for the service: `socket`, `as_pid`, `status`."},
	{SystemdKeepAlive, byAgent, "systemd expects watchdog pings from stallmon itself: WATCHDOG=1 every `every` while the target is seen."},
	{CapabilityMissing, byAgent, "A capability an option needs is missing: `capability`, `detail`."},

	{ServiceStarted, byRun, "A start of the service: `incarnation`, `pid`, `cgroup`, `command`."},
	{ServiceExited, byRun, "The service's main process ended: `incarnation`, `pid`, `status`, `exit_code`."},
	{ServiceRestart, byRun, "The service starts again after `delay_seconds`: `restart`, `status`."},
	{ServiceGaveUp, byRun, "`--max-restarts` reached: `restarts`, `status`."},
	{ServiceStopTimeout, byRun, "The service outlived `--stop-timeout` after a forwarded SIGTERM or SIGINT and is killed: `pid`, `timeout_seconds`."},
	{ServiceKillFailed, byRun, "Killing the service, or what it left in its cgroup, failed: `err`, `detail`."},
	{ServiceAbandoned, byRun, "Stopping, the service outlived `--stop-timeout` and the kill that followed by `--kill-grace`: stallmon exits (status 5) and leaves it behind, silent on the heartbeat. `cgroup` (the abandoned cgroup), `pid`, `threads` (each left thread as `tid comm syscall state`), `stop_timeout_seconds`, `kill_grace_seconds`."},
	{ServiceWaitingOld, byRun, "The service cannot start (again) while a cgroup of an earlier start still holds processes, killed but stuck in the kernel: `cgroup`, `threads` (each as `tid comm state wchan`), `waited_seconds`, and `err` when its cgroup.events could not be read (the wait goes on: only a cgroup gone ends it). Logged when the wait begins and every 10 s. For a start of this stallmon (`incarnation` set; logged from `--kill-grace` after the kill), `/readyz` says `fenced: ...` and `stallmon_target_unkillable` is 1; for a cgroup a stallmon run since gone left in the same parent, `/readyz` answers 503 `waiting: ...` and `stallmon_service_waiting` is 1."},
	{SignalForwarded, byRun, "A signal went to the service's main process: `signal`, `pid`."},
	{CgroupRemoved, byRun, "A cgroup left by an earlier run was removed: `cgroup`."},
	{CgroupRemoveFailed, byRun, "The service's cgroup could not be removed: `err`."},

	{Listening, byListen, "The listener joined the group: `group`, `interface`, `key_ids`, `timeout_seconds`, `on_failover`, `expect`, `state_file`."},
	{ListenerStopped, byListen, "The listener stopped: packets `accepted` and `rejected`."},
	{NodeStateChanged, byListen, "A node changed state: `node`, `state`, `previous`, `incarnation`, `seq`."},
	{NodeFailed, byListen, "A node failed over (stalled, fenced or silent): the fields of `node_state_changed` and `reason`."},
	{PacketDropped, byListen, "A packet was rejected: `reason` (bad_mac, unknown_key, unauthenticated, replayed, after_failover, ...), `err`."},
	{FailoverHookDone, byListen, "`--on-failover` ran: `node`, `reason`, `incarnation`, `duration_seconds`, `output`."},
	{FailoverHookFailed, byListen, "`--on-failover` failed or timed out: the fields of `failover_hook_done` and `err`."},
	{PrintFailed, byListen, "Node state changes cannot be printed (stdout closed), once: `err`. Failover hooks go on."},
	{ListenerStateLoaded, byListen, "`--state-file` was read at start (or is new): `path`, `nodes` (how many it restored)."},
	{ListenerStateSaveFailed, byListen, "`--state-file` could not be written: `path`, `err`. Logged as an error once per streak of failures; detection goes on, and the next change is tried again. A restart meanwhile would know only the last state saved."},
	{ListenerStateSaved, byListen, "`--state-file` is written again after `listener_state_save_failed`: `path`."},
	{ListenerStateAbandoned, byListen, "At stop, the last save of `--state-file` did not end within `waited_seconds` (the timeout, at most 5 s: a hung file system) and the listener stops without it: `path`. A restart knows the last state saved."},

	{MetricsListening, byAll, "The metrics server listens: `addr`."},
	{MetricsFailed, byAll, "The metrics server could not start, or an option needs it: `addr`, `err`. Not fatal."},
	{MetricsReadFailed, byAgent, "A scrape could not read the tracker: `source`, `err`. The scrape goes on."},
	{LogDropped, byAll, "The log output blocked and `lines` were dropped (`reason`; listen's node state changes say so in `detail`)."},
}
