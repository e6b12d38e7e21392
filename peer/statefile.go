package peer

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/stallmon/stallmon/heartbeat"
)

// ErrStateFile: the listener state file cannot be read or makes no sense.
// A listener refuses to start on it rather than start without the
// sequence numbers and failovers it holds (see ListenerConfig.StateFile).
var ErrStateFile = errors.New("peer: bad state file")

// stateFileError reads as its own message, which names the file, and is
// ErrStateFile to errors.Is.
type stateFileError struct{ msg string }

func (e *stateFileError) Error() string        { return e.msg }
func (e *stateFileError) Is(target error) bool { return target == ErrStateFile }

func badStateFile(format string, args ...any) error {
	return &stateFileError{msg: fmt.Sprintf(format, args...)}
}

// stateFormat names the file's content, so that another JSON file handed
// in by mistake is refused rather than read as a listener that knew
// no nodes.
const (
	stateFormat  = "stallmon-listener-state"
	stateVersion = 1
)

// stateDoc is the state file: docs/peers.md describes it.
type stateDoc struct {
	Format  string        `json:"format"`
	Version int           `json:"version"`
	Nodes   []stateRecord `json:"nodes"`
}

// stateRecord is what a restarted listener needs of one node: its replay
// position, its state, and whether its incarnation was failed over.
type stateRecord struct {
	Node          string `json:"node"`
	State         string `json:"state"`
	Incarnation   uint64 `json:"incarnation"`
	Seq           uint64 `json:"seq"`
	Authenticated bool   `json:"authenticated"`
	LastSeen      int64  `json:"last_seen_unix_nano"`
	Deadline      int64  `json:"takeover_deadline_unix_nano"`
	WasAlive      bool   `json:"was_alive"`
	FailedOver    bool   `json:"failed_over"`
	// BlindFailover is when a node never heard was failed over: without
	// it a restart would take the incarnation already failed over for a
	// new one (see Detector.Expect).
	BlindFailover int64 `json:"blind_failover_unix_nano,omitempty"`
	// TakeoverAfterArrival is the takeover deadline's distance from the
	// arrival of the packet that promised it. A restart counts it again
	// from its own start: the wall clock may have stepped between the
	// runs, and a deadline read back early would let a hook take over
	// beside a target not yet killed. Late by the downtime at most.
	TakeoverAfterArrival int64 `json:"takeover_after_arrival_ns,omitempty"`
}

// loadState reads path. A missing file is a first start (nil records); a
// missing directory is an error, since no state could ever be saved there.
func loadState(path string, maxNodes int) ([]stateRecord, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		if st, derr := os.Stat(filepath.Dir(path)); derr != nil || !st.IsDir() {
			return nil, badStateFile("listener state file %s: its directory is missing", path)
		}
		return nil, nil
	}
	if err != nil {
		return nil, badStateFile("reading listener state file: %v", err)
	}
	recs, err := parseState(b, maxNodes)
	if err != nil {
		return nil, badStateFile("listener state file %s is corrupt: %v", path, err)
	}
	return recs, nil
}

func parseState(b []byte, maxNodes int) ([]stateRecord, error) {
	var doc stateDoc
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, err
	}
	if doc.Format != stateFormat {
		return nil, fmt.Errorf("format %q, want %q", doc.Format, stateFormat)
	}
	if doc.Version != stateVersion {
		return nil, fmt.Errorf("version %d, want %d", doc.Version, stateVersion)
	}
	if len(doc.Nodes) > maxNodes {
		return nil, fmt.Errorf("%d nodes, over the limit of %d", len(doc.Nodes), maxNodes)
	}
	seen := make(map[string]bool, len(doc.Nodes))
	for _, r := range doc.Nodes {
		if err := heartbeat.CheckNodeID(r.Node); err != nil {
			return nil, err
		}
		if seen[r.Node] {
			return nil, fmt.Errorf("node %q listed twice", r.Node)
		}
		seen[r.Node] = true
		if _, err := stateNamed(r.State); err != nil {
			return nil, fmt.Errorf("node %q: %w", r.Node, err)
		}
	}
	return doc.Nodes, nil
}

// stateNamed reads a state a node can be saved in: any but Unknown.
func stateNamed(s string) (State, error) {
	for _, st := range []State{Alive, Stalled, Fenced, Dead, Left} {
		if s == st.String() {
			return st, nil
		}
	}
	return Unknown, fmt.Errorf("state %q", s)
}

// saveState replaces path with recs atomically: a crash leaves the old
// file or the new one, never a mix, and the new one is on disk (file and
// directory entry fsynced) when saveState returns nil.
func saveState(path string, recs []stateRecord) error {
	b, err := json.Marshal(stateDoc{Format: stateFormat, Version: stateVersion, Nodes: recs})
	if err != nil {
		return fmt.Errorf("encoding listener state: %w", err)
	}
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("saving listener state: %w", err)
	}
	tmp := f.Name()
	_, err = f.Write(append(b, '\n'))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("saving listener state to %s: %w", path, err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("saving listener state: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("saving listener state: syncing %s: %w", dir, err)
	}
	return nil
}

// records is the detector's state as the state file holds it. Nodes never
// heard (expected, not yet dead) carry nothing worth keeping.
func (d *Detector) records() []stateRecord {
	recs, _ := d.snapshot()
	return recs
}

// snapshot is records with the version it holds: the count of changes
// and of packets accepted, so a saver can tell a state change, to save at
// once, from sequence numbers alone, which can wait for a checkpoint.
func (d *Detector) snapshot() ([]stateRecord, saveVersion) {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]stateRecord, 0, len(d.nodes))
	for id, n := range d.nodes {
		if n.state == Unknown {
			continue
		}
		r := stateRecord{
			Node: id, State: n.state.String(), Incarnation: n.incarnation, Seq: n.seq,
			Authenticated: n.authenticated, LastSeen: unixNano(n.lastSeen), Deadline: unixNano(n.deadline),
			WasAlive: n.wasAlive, FailedOver: n.failedOver, BlindFailover: unixNano(n.blindFailover),
		}
		if !n.deadline.IsZero() {
			r.TakeoverAfterArrival = int64(n.deadline.Sub(n.lastSeen))
		}
		out = append(out, r)
	}
	return out, saveVersion{changes: d.changes, accepted: d.stats.Accepted}
}

// saveVersion says how far a snapshot of the detector goes.
type saveVersion struct{ changes, accepted uint64 }

// restore loads recs into a detector that has seen nothing yet. Each
// node's silence counts from now: the listener was not listening before.
func (d *Detector) restore(recs []stateRecord, now time.Time) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.nodes) != 0 {
		return errors.New("peer detector: restoring state into a detector already in use")
	}
	for _, r := range recs {
		st, err := stateNamed(r.State)
		if err != nil {
			return badStateFile("node %q: %v", r.Node, err)
		}
		d.nodes[r.Node] = &node{
			state: st, incarnation: r.Incarnation, seq: r.Seq, authenticated: r.Authenticated,
			lastSeen: fromUnixNano(r.LastSeen), silentSince: now, deadline: restoredDeadline(r, now),
			wasAlive: r.WasAlive, failedOver: r.FailedOver, blindFailover: fromUnixNano(r.BlindFailover),
		}
	}
	return nil
}

// restoredDeadline counts the promise of r again from now, the restart
// (read from the monotonic clock for the hook), never from the saved wall
// time: never early, at most one downtime late. A file saved before the
// duration was kept gives it as the two stamps of the same run.
func restoredDeadline(r stateRecord, now time.Time) time.Time {
	if r.Deadline == 0 {
		return time.Time{}
	}
	after := time.Duration(r.TakeoverAfterArrival)
	if after == 0 && r.LastSeen != 0 {
		after = time.Duration(r.Deadline - r.LastSeen)
	}
	return now.Add(after)
}

func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromUnixNano(ns int64) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns)
}
