// The two objects built from this source: the full one, and the minimal
// one (-DSTALLMON_MINIMAL) for kernels without the helpers the full one
// calls (5.10 to 5.14: see internal/tracker/features.go). What differs
// between them hides behind the few names below and in regs.h, maps.h,
// target.h and deaths.h, so that the programs read the same in both.

#ifndef STALLMON_BUILD_H
#define STALLMON_BUILD_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

#ifdef STALLMON_MINIMAL

// bpf_get_current_task_btf came in 5.11. bpf_get_current_task's pointer
// is a plain number to the verifier: every field behind it is a probe
// read, and so is every field read through KREAD.
#define current_task() ((struct task_struct *)bpf_get_current_task())
#define KREAD(p, field) BPF_CORE_READ(p, field)

#else

// A trusted BTF pointer: plain loads, no helper call on the target's
// every syscall.
#define current_task() bpf_get_current_task_btf()
#define KREAD(p, field) ((p)->field)

#endif

#endif
