package budget

import "go.yaml.in/yaml/v3"

// removal is one name under remove:, a syscall's or a state's.
type removal struct {
	line    int
	syscall string
	state   State
	isState bool
}

// parseRemove reads remove: {syscalls: [...], states: [...]}.
func parseRemove(n *yaml.Node, known func(string) bool) ([]removal, error) {
	pairs, err := mappingPairs(n, "remove")
	if err != nil {
		return nil, err
	}
	var out []removal
	seen := map[string]int{}
	for _, p := range pairs {
		if p.key.Value != "syscalls" && p.key.Value != "states" {
			return nil, errAt(p.key.Line, "remove: unknown key %q (want syscalls or states)", p.key.Value)
		}
		if p.val.Kind != yaml.SequenceNode {
			return nil, errAt(p.val.Line, "remove: %s: want a list of names, got %s", p.key.Value, describe(p.val))
		}
		for _, item := range p.val.Content {
			if item.Kind != yaml.ScalarNode {
				return nil, errAt(item.Line, "remove: %s: want a name, got %s", p.key.Value, describe(item))
			}
			r := removal{line: item.Line}
			if p.key.Value == "states" {
				if r.state, err = ParseState(item.Value); err != nil {
					return nil, errAt(item.Line, "remove: states: unknown state %q (want %s)", item.Value, stateList())
				}
				r.isState = true
			} else {
				switch r.syscall = item.Value; {
				case !validName(r.syscall):
					return nil, errAt(item.Line, "remove: invalid syscall name %q", r.syscall)
				case known != nil && !known(r.syscall):
					return nil, errAt(item.Line, "remove: unknown syscall %q", r.syscall)
				}
			}
			key := p.key.Value + " " + item.Value
			if first, dup := seen[key]; dup {
				return nil, errAt(item.Line, "remove: %s: %s listed twice (first at line %d)", p.key.Value, item.Value, first)
			}
			seen[key] = item.Line
			out = append(out, r)
		}
	}
	return out, nil
}
