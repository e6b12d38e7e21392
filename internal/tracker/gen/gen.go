// Package gen holds code generated from ../bpf and the kernel's syscall
// tables. Only package tracker imports it. Regenerate with `make generate`.
package gen

//go:generate go tool bpf2go -go-package gen -output-stem stallmon -target amd64,arm64 -type thread_rec -type counter -type death -type fd_class -type word -type abi -type fd_args_table -type fd_kind -type task_state_bits -type task_flag_bits -type signal_flag_bits -type quiet_set -type death_ring -type native_nr_table -type walk_end -type vfork_child -type wait_site -type member_layout Stallmon ../bpf/stallmon.c -- -I../bpf -mcpu=v3 -O2 -g -Wall -Werror
//go:generate go tool bpf2go -go-package gen -output-stem stallmon_minimal -target amd64,arm64 -type member_layout StallmonMinimal ../bpf/stallmon.c -- -I../bpf -mcpu=v3 -O2 -g -Wall -Werror -DSTALLMON_MINIMAL
//go:generate go run ../../tools/syscallgen -arch amd64 -out syscalls_amd64.go
//go:generate go run ../../tools/syscallgen -arch arm64 -out syscalls_arm64.go
