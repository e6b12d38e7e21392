// Package dashboards proves what stallmon ships for Prometheus and Grafana
// (deploy/grafana: the node and fleet dashboards and their provisioning
// file; deploy/prometheus: alerting rules with their unit tests and an
// example scrape configuration): each dashboard validates against schemas
// generated from Grafana's own types, and every panel query and alert
// expression is answered by a real Prometheus scraping a real agent whose
// target hangs in a syscall.
package dashboards
