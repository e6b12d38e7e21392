package tracker

import (
	"testing"

	"github.com/stallmon/stallmon/internal/fdkind"
	"github.com/stallmon/stallmon/internal/tracker/gen"
)

// The kernel side classifies fds with enum fd_kind (bpf/fdclass.h) and the
// snapshot hands its numbers on as fdkind.Kind(c.Kind): the two lists
// must be one list. fdkind cannot import gen, so it is checked here, by
// name, both ways: a kind added, dropped or moved on either side fails.
func TestFDKindsAreTheKernelSides(t *testing.T) {
	kernel := map[fdkind.Kind]gen.StallmonFdKind{
		fdkind.None:    gen.StallmonFdKindKIND_NONE,
		fdkind.Regular: gen.StallmonFdKindKIND_REGULAR,
		fdkind.Socket:  gen.StallmonFdKindKIND_SOCKET,
		fdkind.Pipe:    gen.StallmonFdKindKIND_PIPE,
		fdkind.TTY:     gen.StallmonFdKindKIND_TTY,
		fdkind.Device:  gen.StallmonFdKindKIND_DEVICE,
		fdkind.Other:   gen.StallmonFdKindKIND_OTHER,
	}
	kinds := fdkind.Kinds()
	if len(kinds) != int(gen.StallmonFdKindKIND_MAX) {
		t.Errorf("fdkind has %d kinds, enum fd_kind in bpf/fdclass.h %d (KIND_MAX)", len(kinds), gen.StallmonFdKindKIND_MAX)
	}
	for _, k := range kinds {
		c, ok := kernel[k]
		switch {
		case !ok:
			t.Errorf("fdkind.%v has no KIND_ in enum fd_kind (bpf/fdclass.h): add it there, then here", k)
		case uint32(k) != uint32(c):
			t.Errorf("fdkind.%v is %d, its KIND_ in enum fd_kind is %d", k, k, c)
		}
	}
}
