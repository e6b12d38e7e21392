// Linux 6.7's open-coded task iterator, declared here because bookworm's
// libbpf (1.1) predates it. Weak: the object still loads on an older
// kernel, where the program that calls them is left out (threads.go).

#ifndef STALLMON_THREADITER_H
#define STALLMON_THREADITER_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

#include "maps.h"

extern int bpf_iter_task_new(struct bpf_iter_task *it, struct task_struct *task, unsigned int flags) __weak __ksym;
extern struct task_struct *bpf_iter_task_next(struct bpf_iter_task *it) __weak __ksym;
extern void bpf_iter_task_destroy(struct bpf_iter_task *it) __weak __ksym;
extern struct task_struct *bpf_task_acquire(struct task_struct *p) __weak __ksym;
extern void bpf_task_release(struct task_struct *p) __weak __ksym;

// A global function's pointer argument the verifier takes as trusted
// (Linux 6.8).
#define __arg_trusted __attribute__((btf_decl_tag("arg:trusted")))

// The record the open-coded walk fills for each thread: the loop's
// iterator and a function call's frame leave no room for it on the
// 512-byte stack. One slot per CPU: an iterator program cannot migrate,
// and the agent runs one pass at a time.
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct thread_rec);
} thread_scratch SEC(".maps");

#endif
