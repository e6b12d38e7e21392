package budget

import _ "embed"

//go:embed default.yaml
var defaultYAML []byte

// Default returns the built-in table. Unlike Parse, it skips syscalls that
// known rejects instead of failing: the table names syscalls of every
// architecture (arm64 has no epoll_wait or poll), and a syscall that does
// not exist cannot stall.
func Default(known func(name string) bool) (*Table, error) {
	t, err := builtinSpecs(known)
	if err != nil {
		return nil, err
	}
	return t.built()
}

// DefaultYAML returns the built-in table's source, whose comments explain
// each choice; a starting point for a custom table.
func DefaultYAML() []byte {
	return append([]byte(nil), defaultYAML...)
}
