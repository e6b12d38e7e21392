// The in-flight word and the syscall ABIs: how the kernel side tells the
// agent which syscall a thread is in and since when.

#ifndef STALLMON_WORD_H
#define STALLMON_WORD_H

// The in-flight word packs the syscall number (low NR_BITS), the ABI it
// was made through (ABI_BITS above) and the entry time (upper bits, in
// units of 2^TS_SHIFT ns, about 1 us). One aligned 64-bit store publishes
// all at once: a reader racing with sys_enter can never pair a new syscall
// number with the previous syscall's timestamp, which would show a fast
// syscall as hours old. 0 means "not in a syscall".
#define NR_BITS 12
#define NR_MASK ((1ULL << NR_BITS) - 1)
#define ABI_BITS 2
#define ABI_SHIFT NR_BITS
#define TS_BITS_SHIFT (NR_BITS + ABI_BITS)
#define TS_SHIFT 10

// The syscall ABI a thread entered through: a 64-bit process may make
// 32-bit syscalls (int 0x80) and a 32-bit process makes nothing else, and
// the same number names different syscalls in each table (ia32 read is 3,
// native 3 is close).
#define ABI_NATIVE 0
#define ABI_COMPAT 1 // ia32 on amd64, aarch32 on arm64
#define ABI_X32 2

#endif
