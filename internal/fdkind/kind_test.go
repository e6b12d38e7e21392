package fdkind

import (
	"strings"
	"testing"
)

func TestKindNamesRoundTrip(t *testing.T) {
	want := []string{"none", "regular", "socket", "pipe", "tty", "device", "other"}
	kinds := Kinds()
	if len(kinds) != len(want) {
		t.Fatalf("Kinds() has %d kinds, want %d", len(kinds), len(want))
	}
	for i, k := range kinds {
		if k.String() != want[i] {
			t.Errorf("Kind(%d).String() = %q, want %q", i, k.String(), want[i])
		}
		got, err := ParseKind(want[i])
		if err != nil {
			t.Fatalf("ParseKind(%q): %v", want[i], err)
		}
		if got != k {
			t.Errorf("ParseKind(%q) = %v, want %v", want[i], got, k)
		}
	}
}

func TestZeroKindIsNone(t *testing.T) {
	var k Kind
	if k != None {
		t.Fatalf("zero Kind = %v, want none", k)
	}
}

func TestParseKindRejects(t *testing.T) {
	for _, s := range []string{"", "Socket", "fifo", "file", " tty"} {
		if k, err := ParseKind(s); err == nil {
			t.Errorf("ParseKind(%q) = %v, want an error", s, k)
		} else if !strings.Contains(err.Error(), "unknown fd kind") {
			t.Errorf("ParseKind(%q) error %q does not say what is wrong", s, err)
		}
	}
}

func TestStringOutOfRange(t *testing.T) {
	if got := Kind(200).String(); got != "Kind(200)" {
		t.Fatalf("Kind(200).String() = %q", got)
	}
}
