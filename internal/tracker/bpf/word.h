// The in-flight word and the syscall ABIs: how the kernel side tells the
// agent which syscall a thread is in and since when. The agent decodes
// the same bits, so these are enums, which reach Go through bpf2go's
// -type (see internal/tracker/gen/gen.go) instead of being copied by hand.

#ifndef STALLMON_WORD_H
#define STALLMON_WORD_H

// The in-flight word packs the syscall number (low NR_BITS), the ABI it
// was made through (ABI_BITS above) and the entry time (upper bits, in
// units of 2^TS_SHIFT ns, about 1 us). One aligned 64-bit store publishes
// all at once: a reader racing with sys_enter can never pair a new syscall
// number with the previous syscall's timestamp, which would show a fast
// syscall as hours old. 0 means "not in a syscall".
enum word {
	NR_BITS = 12,
	NR_MASK = (1 << NR_BITS) - 1,
	ABI_BITS = 2,
	ABI_SHIFT = NR_BITS,
	TS_BITS_SHIFT = NR_BITS + ABI_BITS,
	TS_SHIFT = 10,
};

// The syscall ABI a thread entered through: a 64-bit process may make
// 32-bit syscalls (int 0x80) and a 32-bit process makes nothing else, and
// the same number names different syscalls in each table (ia32 read is 3,
// native 3 is close).
enum abi {
	ABI_NATIVE = 0,
	ABI_COMPAT = 1, // ia32 on amd64, aarch32 on arm64
	ABI_X32 = 2,
};

_Static_assert(ABI_X32 < 1 << ABI_BITS, "every ABI fits the word's ABI_BITS");

// An enum reaches BTF, and so bpf2go, only if something refers to it.
const enum word *unused_word __attribute__((unused));
const enum abi *unused_abi __attribute__((unused));

#endif
