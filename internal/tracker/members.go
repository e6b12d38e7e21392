package tracker

import (
	"math/bits"

	"github.com/stallmon/stallmon/internal/tracker/gen"
)

// memberLayout is how the kernel side's tree and joined maps hold a tgid
// (bpf/target.h): how many tgids share each 64-bit word. The full object
// gives each a bit, the minimal one a byte (its kernels have no atomic
// or/and for a bit). Userspace changes the words only with atomic
// operations, so either layout is safe against the kernel side's writes.
type memberLayout int

const (
	bitPerMember  = memberLayout(gen.StallmonMemberLayoutMEMBERS_PER_WORD)
	bytePerMember = memberLayout(gen.StallmonMinimalMemberLayoutMEMBERS_PER_WORD)
)

// words is how many words hold every pid below pidMax.
func (l memberLayout) words(pidMax int) uint32 { return uint32(pidMax/int(l) + 1) }

// at is the word and the mask of pid.
func (l memberLayout) at(pid int) (int, uint64) {
	if l == bytePerMember {
		return pid / 8, 1 << (8 * (pid % 8))
	}
	return pid / 64, 1 << (pid % 64)
}

// appendPIDs appends to dst the pids that word i, holding w, marks.
func (l memberLayout) appendPIDs(dst []int, i int, w uint64) []int {
	for w != 0 {
		b := bits.TrailingZeros64(w)
		if l == bytePerMember {
			dst = append(dst, i*8+b/8)
			w &^= 0xff << (b &^ 7)
			continue
		}
		dst = append(dst, i*64+b)
		w &^= 1 << b
	}
	return dst
}
