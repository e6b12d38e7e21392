package budget

import (
	"bytes"
	"errors"
	"testing"
)

// FuzzParse checks that no input panics Parse, that every rejection is a
// *ConfigError (the caller's exit status depends on it), and that whatever
// is accepted formats to text that parses back to the same table.
func FuzzParse(f *testing.F) {
	f.Add(defaultYAML)
	f.Add([]byte(precedenceTable))
	f.Add([]byte(overrideTable))
	f.Add([]byte(stateTable))
	f.Add([]byte("extends: builtin\nremove: {syscalls: [read], states: [stopped]}\nsyscalls:\n  write: {by_fd: {device: unbounded}}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		tb, err := Parse(data, nil)
		if err != nil {
			var ce *ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("rejection is not a *ConfigError: %v (%T)", err, err)
			}
			return
		}
		var first bytes.Buffer
		if err := tb.Format(&first); err != nil {
			t.Fatal(err)
		}
		back, err := Parse(first.Bytes(), nil)
		if err != nil {
			t.Fatalf("Format output rejected: %v\ninput:\n%q\nformatted:\n%s", err, data, first.String())
		}
		if d := sameBehaviour(tb, back); d != "" {
			t.Fatalf("round trip changed %s\ninput:\n%q\nformatted:\n%s", d, data, first.String())
		}
		var second bytes.Buffer
		if err := back.Format(&second); err != nil {
			t.Fatal(err)
		}
		// The rules an extends: builtin took from the built-in table say
		// so in comments; parsed back, they come from the text.
		if withoutOrigins(first.String()) != second.String() {
			t.Fatalf("Format not stable:\n%s\nthen\n%s", first.String(), second.String())
		}
	})
}
