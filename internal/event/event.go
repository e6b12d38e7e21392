// Package event is the one list of what stallmon logs. Every log record's
// "msg" is one of these names: operators, alert rules and tests match on a
// word that never changes, and a sentence for a person goes in a "detail"
// attribute. docs/events.md is generated from All; a test fails on a log
// call whose msg is not here.
package event

// Names, grouped by what logs them.
const (
	// The agent.
	Attached                = "attached"
	Stall                   = "stall"
	DiedInSyscall           = "died_in_syscall"
	StallCleared            = "stall_cleared"
	HeartbeatStopped        = "heartbeat_stopped"
	HeartbeatResumed        = "heartbeat_resumed"
	HeartbeatFinal          = "heartbeat_final"
	HeartbeatSendFailed     = "heartbeat_send_failed"
	Kill                    = "kill"
	Unkillable              = "unkillable"
	LateReturn              = "late_return"
	NodeFence               = "node_fence"
	NodeFenceArmed          = "node_fence_armed"
	NodeFenceFeedFailed     = "node_fence_feed_failed"
	TargetExited            = "target_exited"
	ExitStatusFailed        = "exit_status_failed"
	AgentLate               = "agent_late"
	PollFailed              = "poll_failed"
	PollRecovered           = "poll_recovered"
	TrackerTampered         = "tracker_tampered"
	ThreadStarted           = "thread_started"
	ThreadExited            = "thread_exited"
	ThreadUnknown           = "thread_unknown"
	ThreadKnown             = "thread_known"
	UnrecordedUnmarked      = "unrecorded_unmarked"
	IteratorUnfiltered      = "iterator_unfiltered"
	KernelSymbolsUnreadable = "kernel_symbols_unreadable"
	SelfProtectFailed       = "self_protect_failed"
	StateDirUnusable        = "state_dir_unusable"
	NodeNotLocked           = "node_not_locked"
	IncarnationNotPersisted = "incarnation_not_persisted"
	Unauthenticated         = "heartbeat_unauthenticated"

	// Sinks: the hub and each integration.
	SinkFailed                 = "sink_failed"
	SinkRecovered              = "sink_recovered"
	SinkAbandoned              = "sink_abandoned"
	SinkCloseFailed            = "sink_close_failed"
	KeepalivedFileWritten      = "keepalived_file_written"
	KeepalivedFileAltered      = "keepalived_file_altered"
	PacemakerAttributeSet      = "pacemaker_attribute_set"
	EtcdLease                  = "etcd_lease"
	EtcdLeaseLost              = "etcd_lease_lost"
	EtcdTTLTooShort            = "etcd_ttl_too_short"
	EtcdElected                = "etcd_elected"
	EtcdDemoted                = "etcd_demoted"
	EtcdCampaignFailed         = "etcd_campaign_failed"
	EtcdCampaignRunningAtClose = "etcd_campaign_running_at_close"
	EtcdHook                   = "etcd_hook"
	EtcdHookSkipped            = "etcd_hook_skipped"
	SystemdWatchdogTriggered   = "systemd_watchdog_triggered"
	SystemdKeepAlive           = "systemd_keep_alive"
	CapabilityMissing          = "capability_missing"

	// The supervisor (stallmon run).
	ServiceStarted     = "service_started"
	ServiceExited      = "service_exited"
	ServiceRestart     = "service_restart"
	ServiceGaveUp      = "service_gave_up"
	ServiceStopTimeout = "service_stop_timeout"
	ServiceKillFailed  = "service_kill_failed"
	SignalForwarded    = "signal_forwarded"
	CgroupRemoved      = "cgroup_removed"
	CgroupRemoveFailed = "cgroup_remove_failed"

	// The peer side (stallmon listen).
	Listening               = "listening"
	ListenerStopped         = "listener_stopped"
	NodeStateChanged        = "node_state_changed"
	NodeFailed              = "node_failed"
	PacketDropped           = "packet_dropped"
	FailoverHookDone        = "failover_hook_done"
	FailoverHookFailed      = "failover_hook_failed"
	PrintFailed             = "print_failed"
	ListenerStateLoaded     = "listener_state_loaded"
	ListenerStateSaveFailed = "listener_state_save_failed"
	ListenerStateSaved      = "listener_state_saved"

	// Every command.
	MetricsListening  = "metrics_listening"
	MetricsFailed     = "metrics_failed"
	MetricsReadFailed = "metrics_read_failed"
	LogDropped        = "log_dropped"
)
