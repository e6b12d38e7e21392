#!/bin/sh
# Anyone can follow what stallmon says of each node: a PUT whose value's
# "state" is "alive", "stalled" or "blind", and a DELETE once the lease
# expires or is revoked.
exec etcdctl --endpoints "$ETCD_ENDPOINTS" watch --prefix /stallmon/nodes/
