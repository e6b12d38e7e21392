// Package gen holds code generated from ../bpf. Only package egress
// imports it. Regenerate with `make generate`.
package gen

//go:generate go tool bpf2go -go-package gen -output-stem egress -target amd64,arm64 -type dest -type egress_limits Egress ../bpf/egress.c -- -I../bpf -I../../tracker/bpf -mcpu=v3 -O2 -g -Wall -Werror
