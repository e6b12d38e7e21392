package etcd

import (
	"encoding/json"
	"time"
)

// NodeValue is the JSON value of a node's key. The key exists only while
// its lease lives: refreshed while the target is alive, left to expire at
// a stall, revoked when the target is fenced or stallmon leaves. A peer
// that sees any state but "alive" knows the key is on its way out.
type NodeValue struct {
	Node string `json:"node"`
	// State is the verdict: alive, stalled, blind.
	State string `json:"state"`
	// PID is the service's main process, 0 for a cgroup target.
	PID int `json:"pid"`
	// Time is when the agent formed the verdict that wrote the value.
	Time time.Time `json:"time"`
}

func (v NodeValue) encode() string {
	b, err := json.Marshal(v)
	if err != nil {
		panic("etcd: encoding a NodeValue: " + err.Error()) // strings, ints and a time cannot fail
	}
	return string(b)
}

// ParseNodeValue decodes the value of a node's key.
func ParseNodeValue(b []byte) (NodeValue, error) {
	var v NodeValue
	err := json.Unmarshal(b, &v)
	return v, err
}
