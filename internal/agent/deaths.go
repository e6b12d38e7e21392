package agent

import (
	"time"

	"github.com/stallmon/stallmon/internal/tracker"
)

// deathWatch turns threads that the kernel killed inside a syscall (an
// oops) into stalls that never clear. Such a syscall cannot return and
// the thread is gone with whatever it held, so the process is past both
// its budget and its kill_after the moment the death is seen, whatever
// the table says: heartbeats stop for good and, with kill on, the
// process is fenced at once.
type deathWatch struct {
	seen uint64 // highest Seq taken in
	dead []death
}

type death struct {
	tracker.Death
	at time.Time // wall clock at death, so the stall keeps ageing
}

// maxDeaths bounds what is kept: one death already condemns the process,
// so as many as the kernel's ring holds is plenty.
const maxDeaths = tracker.DeathRing

// update takes in the snapshot's deaths and returns the stalls of those
// not seen before.
func (w *deathWatch) update(snap tracker.Snapshot) (fresh []judged) {
	take := func(d tracker.Death) {
		w.seen = max(w.seen, d.Seq)
		dd := death{Death: d, at: snap.Taken.Add(-d.Ago)}
		if len(w.dead) < maxDeaths {
			w.dead = append(w.dead, dd)
		}
		fresh = append(fresh, dd.judged(snap.Taken))
	}
	for _, d := range snap.Deaths {
		if d.Seq > w.seen {
			take(d)
		}
	}
	if snap.DeathsTotal > w.seen && len(w.dead) == 0 {
		// Counted, but every record was overwritten before we read one:
		// more died between two polls than the kernel keeps. The count
		// alone condemns the process.
		take(tracker.Death{Syscall: "unknown", FD: -1, Seq: snap.DeathsTotal})
	}
	return fresh
}

// over returns a stall for every death taken in so far, aged to now.
func (w *deathWatch) over(now time.Time) []judged {
	out := make([]judged, 0, len(w.dead))
	for _, d := range w.dead {
		out = append(out, d.judged(now))
	}
	return out
}

func (d death) judged(now time.Time) judged {
	return judged{
		thread: tracker.Thread{
			PID: d.PID, TID: d.TID, Comm: d.Comm, State: tracker.StateDead, InSyscall: true,
			Nr: d.Nr, ABI: d.ABI, Syscall: d.Syscall, FD: d.FD, Elapsed: d.InSyscall + max(0, now.Sub(d.at)),
			// Unique per death, so the stall set keeps each one open.
			Entered: d.Seq,
		},
		fd:     tracker.FD{Num: d.FD},
		reason: reasonDied,
		span:   d.InSyscall + max(0, now.Sub(d.at)),
		death:  &d.Death,
	}
}
