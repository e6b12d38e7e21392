// Package gen holds code generated from ../bpf. Only package listenq
// imports it. Regenerate with `make generate`.
package gen

//go:generate go tool bpf2go -go-package gen -output-stem listenq -target amd64,arm64 -type listen_rec Listenq ../bpf/listenq.c -- -I../bpf -I../../tracker/bpf -mcpu=v3 -O2 -g -Wall -Werror
