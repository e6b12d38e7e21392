package budget

import (
	"fmt"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// SocketName names sockets in the work_waiting rule: by local port (a TCP
// listener and the connections accepted from it), or by unix
// address (a path, or "@name" for an abstract one).
type SocketName struct {
	Port int    // 0 for a unix address
	Unix string // "" for a port
}

func (n SocketName) String() string {
	if n.Unix != "" {
		return strconv.Quote(n.Unix)
	}
	return strconv.Itoa(n.Port)
}

// SocketFilter is the work_waiting rule's choice of sockets: Only, when
// set, names the sockets it judges (every other one is left out); Skip
// names sockets it leaves out. A table sets one of them at most.
type SocketFilter struct {
	Only, Skip []SocketName
}

// IsZero reports whether the filter judges every socket.
func (f SocketFilter) IsZero() bool { return len(f.Only) == 0 && len(f.Skip) == 0 }

// Judges reports whether the rule judges a socket with local port port
// (0 for unix) and unix address addr ("" for TCP).
func (f SocketFilter) Judges(port int, addr string) bool {
	match := func(ns []SocketName) bool {
		for _, n := range ns {
			if (n.Unix == "" && n.Port == port && port != 0) || (n.Unix != "" && n.Unix == addr) {
				return true
			}
		}
		return false
	}
	if len(f.Only) > 0 {
		return match(f.Only)
	}
	return !match(f.Skip)
}

// socketKeys writes the work_waiting rule's own keys as Format shows
// them, each with its leading ", "; nothing for the defaults.
func (t *Table) socketKeys() string {
	var b strings.Builder
	if t.bySocket != Listeners {
		fmt.Fprintf(&b, ", by_socket: %s", t.bySocket)
	}
	for _, l := range []struct {
		key   string
		names []SocketName
	}{{"only", t.socketFilter.Only}, {"skip", t.socketFilter.Skip}} {
		if len(l.names) == 0 {
			continue
		}
		s := make([]string, len(l.names))
		for i, n := range l.names {
			s[i] = n.String()
		}
		fmt.Fprintf(&b, ", %s: [%s]", l.key, strings.Join(s, ", "))
	}
	return b.String()
}

// parseSocketNames reads only's or skip's list.
func parseSocketNames(n *yaml.Node, what string, emptyOK bool) ([]SocketName, error) {
	if n.Kind != yaml.SequenceNode || len(n.Content) == 0 && !emptyOK {
		return nil, errAt(n.Line, "%s: want a list of ports and unix addresses, like [6379, /run/app.sock], got %s", what, describe(n))
	}
	names := make([]SocketName, 0, len(n.Content))
	for _, v := range n.Content {
		if v.Kind != yaml.ScalarNode {
			return nil, errAt(v.Line, "%s: want a port (1-65535), a unix path (/...) or an abstract name (@...), got %s", what, describe(v))
		}
		if p, err := strconv.Atoi(v.Value); err == nil {
			if p < 1 || p > 65535 {
				return nil, errAt(v.Line, "%s: port %d is not in 1-65535", what, p)
			}
			names = append(names, SocketName{Port: p})
			continue
		}
		if (strings.HasPrefix(v.Value, "/") || strings.HasPrefix(v.Value, "@")) && len(v.Value) > 1 && len(v.Value) <= 108 {
			names = append(names, SocketName{Unix: v.Value})
			continue
		}
		return nil, errAt(v.Line, "%s: want a port (1-65535), a unix path (/...) or an abstract name (@...), got %s", what, describe(v))
	}
	return names, nil
}
