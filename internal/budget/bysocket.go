package budget

import (
	"fmt"

	"go.yaml.in/yaml/v3"
)

// BySocket says which sockets the work_waiting rule judges.
type BySocket uint8

const (
	// Listeners: connections waiting in an accept queue with none
	// accepted. The default: a service that stops reading one client
	// while it waits for another (back-pressure) is never judged.
	Listeners BySocket = iota
	// AllSockets: listeners, and connected and datagram sockets whose
	// unread data waits with no read.
	AllSockets
)

var bySocketNames = [...]string{Listeners: "listeners", AllSockets: "all"}

func (b BySocket) String() string {
	if int(b) < len(bySocketNames) {
		return bySocketNames[b]
	}
	return fmt.Sprintf("BySocket(%d)", uint8(b))
}

// WorkWaitingSockets returns which sockets the work_waiting rule judges
// (by_socket in its rule); Listeners when the table does not say.
func (t *Table) WorkWaitingSockets() BySocket { return t.bySocket }

// takeBySocket removes by_socket from the work_waiting rule's mapping n
// and returns its value, so that the rest parses as any state rule. Other
// rules never hold it: parseRule refuses it there.
func takeBySocket(n *yaml.Node, what string) (*yaml.Node, BySocket, error) {
	if n.Kind != yaml.MappingNode {
		return n, Listeners, nil
	}
	if _, err := mappingPairs(n, what); err != nil {
		return nil, 0, err // duplicates, before one by_socket hides another
	}
	rest := *n
	rest.Content = nil
	var val *yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == "by_socket" {
			val = n.Content[i+1]
			continue
		}
		rest.Content = append(rest.Content, n.Content[i], n.Content[i+1])
	}
	if val == nil {
		return n, Listeners, nil
	}
	if val.Kind == yaml.ScalarNode {
		for i, name := range bySocketNames {
			if val.Value == name {
				return &rest, BySocket(i), nil
			}
		}
	}
	return nil, 0, errAt(val.Line, "%s: by_socket: want listeners or all, got %s", what, describe(val))
}
