// Package keepalived lets keepalived move a virtual IP away from a node
// whose service stallmon no longer vouches for.
//
// keepalived's track_file reads a number from a file each time the file
// changes (inotify, no polling). With weight 0, 0 is healthy and any
// other value puts the VRRP instance in FAULT: it sends a priority-0
// advert and drops the VIP, and the peer takes it over at once. The sink
// writes 0 only while the verdict is Alive, and a distinct non-zero value
// for every other state so that an operator reading the file knows why
// (see Value).
//
// keepalived reads a missing file as 0, so the sink never deletes the
// file: it fails closed by writing non-zero instead, when it starts and
// when it stops. A 0 left behind by a stallmon that was killed outright
// (SIGKILL, the OOM killer) is keepalived's to catch:
// deploy/keepalived/keepalived.conf.tmpl pairs the track_file with a
// vrrp_script that fails when no stallmon writing that file runs.
package keepalived
