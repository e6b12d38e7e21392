package pipeline

import "github.com/stallmon/stallmon/peer"

// lateSource lets the listener be built, and so its state file be read
// and judged, before the socket is opened: a bad file is refused with
// nothing joined. Its Source is set before Run.
type lateSource struct{ peer.Source }
