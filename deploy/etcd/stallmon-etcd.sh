#!/bin/sh
# The active node: stallmon keeps /stallmon/nodes/$NODE alive in etcd, on a
# 2 s lease that only a healthy verdict refreshes, and campaigns for this
# node in the election $ELECTION. A stall resigns at once (the key says
# "stalled" and expires within the TTL); a fenced service, or stallmon
# stopping, revokes the lease at once; a dead stallmon lets it expire.
#   SERVICE_PID     the service's main process
#   NODE            this node's name (the key, and its candidacy's value)
#   ETCD_ENDPOINTS  etcd's client URLs, comma-separated
#   ELECTION        the election's name, shared with the standbys
#   ON_ELECTED, ON_DEMOTED  run by /bin/sh -c when this node wins or loses,
#                   with STALLMON_EVENT, _NODE, _ELECTION, _STATE, _PID, _REASON,
#                   _RULE and _KILLS (0: a rule that never kills holds the
#                   service, e.g. stopped under gdb: do not stop it yourself)
exec stallmon attach --pid "$SERVICE_PID" --node-id "$NODE" \
	--etcd-endpoints "$ETCD_ENDPOINTS" --etcd-ttl 2s \
	--etcd-election "$ELECTION" \
	--on-elected "$ON_ELECTED" --on-demoted "$ON_DEMOTED" \
	"$@"
