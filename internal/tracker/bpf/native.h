// Each ABI's syscall numbers in the native numbering, for what is kept per
// native number (the latency histogram, the quiet counts): a 32-bit call
// counts as the native call it is judged as, never under the native call
// that happens to share its number (ia32's read is 3, amd64's close).

#ifndef STALLMON_NATIVE_H
#define STALLMON_NATIVE_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

#include "fdclass.h"
#include "word.h"

// The native number of each ABI's number, indexed like fd_args, set before
// load from the agent's syscall tables; NATIVE_NONE where the native table
// has no such call (or the number names none).
enum native_nr_table {
	NATIVE_NONE = 0xffff,
};

volatile const __u16 native_nrs[FD_ARGS_LEN] = {};

// An enum reaches BTF, and so bpf2go, only if something refers to it.
const enum native_nr_table *unused_native_nr_table __attribute__((unused));

// native_nr returns the native number of syscall nr of abi, NATIVE_NONE if
// there is none. A native number is returned as it is, without a load.
static __always_inline __u32 native_nr(__u32 abi, __u32 nr)
{
	if (abi == ABI_NATIVE)
		return nr;
	__u32 idx = abi * FD_ARGS_NR + (nr & (FD_ARGS_NR - 1));
	// Older verifiers (6.1) lose the bounds of that sum; a mask the
	// compiler cannot drop as redundant restores them.
	barrier_var(idx);
	idx &= FD_ARGS_LEN - 1;
	return native_nrs[idx];
}

#endif
