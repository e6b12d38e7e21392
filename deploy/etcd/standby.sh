#!/bin/sh
# A standby node waits in the same election. etcdctl prints the leader key
# and this node's name once it leads, then holds office until stopped:
# start the service there. (etcdctl's session has a 60 s TTL; a program
# that needs a faster handover back uses concurrency.NewSession WithTTL.)
exec etcdctl --endpoints "$ETCD_ENDPOINTS" elect "$ELECTION" "$NODE"
