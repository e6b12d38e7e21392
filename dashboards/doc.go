// Package dashboards ships stallmon's Grafana dashboards (one node, the
// fleet), their Grafana provisioning file, and Prometheus alerting rules
// with their unit tests. The files are the product; this package embeds
// them and its tests prove them: each dashboard validates against schemas
// generated from Grafana's own types, and every panel query and alert
// expression is answered by a real Prometheus scraping a real agent whose
// target hangs in a syscall.
package dashboards

import "embed"

// Files holds the dashboards (*.json), provisioning/ and prometheus/.
//
//go:embed *.json provisioning/*.yaml prometheus/*.yml
var Files embed.FS
