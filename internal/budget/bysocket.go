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
	// AllSockets: listeners, and connected TCP sockets whose readable
	// data waits with no read.
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

// WorkWaitingFilter returns the sockets the work_waiting rule names to
// judge alone (only) or to leave out (skip); empty when it names none.
func (t *Table) WorkWaitingFilter() SocketFilter { return t.socketFilter }

// socketKeys are the keys only the work_waiting rule has.
type socketKeys struct {
	by        BySocket
	filter    SocketFilter
	filterSet bool
}

// takeSocketKeys removes by_socket, only and skip from the work_waiting
// rule's mapping n and returns their values, so that the rest parses as
// any state rule. Other rules never hold them: parseRule refuses them
// there.
func takeSocketKeys(n *yaml.Node, what string) (*yaml.Node, socketKeys, error) {
	var k socketKeys
	if n.Kind != yaml.MappingNode {
		return n, k, nil
	}
	if _, err := mappingPairs(n, what); err != nil {
		return nil, k, err // duplicates, before one key hides another
	}
	rest := *n
	rest.Content = nil
	var only, skip *yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		key, val := n.Content[i], n.Content[i+1]
		switch key.Value {
		case "by_socket":
			by, err := parseBySocket(val, what)
			if err != nil {
				return nil, k, err
			}
			k.by = by
		case "only":
			only = val
		case "skip":
			skip = val
		default:
			rest.Content = append(rest.Content, key, val)
		}
	}
	if only != nil && skip != nil {
		return nil, k, errAt(skip.Line, "%s: only and skip together: name the sockets to judge or those to leave out, not both", what)
	}
	// An empty skip is allowed: a drop-in writes it to drop the skip of
	// the table it extends (an empty only would judge nothing).
	k.filterSet = only != nil || skip != nil
	var err error
	if only != nil {
		k.filter.Only, err = parseSocketNames(only, what+": only", false)
	}
	if skip != nil {
		k.filter.Skip, err = parseSocketNames(skip, what+": skip", true)
	}
	if err != nil {
		return nil, k, err
	}
	return &rest, k, nil
}

func parseBySocket(val *yaml.Node, what string) (BySocket, error) {
	if val.Kind == yaml.ScalarNode {
		for i, name := range bySocketNames {
			if val.Value == name {
				return BySocket(i), nil
			}
		}
	}
	return 0, errAt(val.Line, "%s: by_socket: want listeners or all, got %s", what, describe(val))
}
