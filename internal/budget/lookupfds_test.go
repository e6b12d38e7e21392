package budget

import (
	"testing"

	"github.com/stallmon/stallmon/internal/fdkind"
)

func TestLookupFDs(t *testing.T) {
	tb := mustParse(t, stateTable+`  copy_file_range:
    by_fd:
      regular: {budget: 5s, kill_after: never}
      pipe: {budget: 5s, kill_after: 40s}
      device: {budget: 5s, kill_after: 30s}
      socket: {budget: 6s, kill_after: 7s}
`)
	def := Rule{Budget: 5 * sec, KillAfter: 60 * sec}
	cases := []struct {
		syscall string
		kinds   []fdkind.Kind
		want    Rule
		by      fdkind.Kind
		why     string
	}{
		{"sendfile", []fdkind.Kind{fdkind.Socket, fdkind.Regular}, def, fdkind.Regular, "a file bounds a sendfile to a socket"},
		{"sendfile", []fdkind.Kind{fdkind.Regular, fdkind.Socket}, def, fdkind.Regular, "order does not matter"},
		{"splice", []fdkind.Kind{fdkind.Pipe, fdkind.Socket}, free, fdkind.Pipe, "all unbounded: the first kind"},
		{"sendfile", []fdkind.Kind{fdkind.Socket, fdkind.None}, def, fdkind.None, "unresolved fd: the syscall's own rule decided"},
		{"sendfile", nil, def, fdkind.None, "no kinds: the syscall's own rule"},
		{"sendfile", []fdkind.Kind{fdkind.Socket}, free, fdkind.Socket, "one kind: Lookup"},
		{"write", []fdkind.Kind{fdkind.Pipe, fdkind.Device, fdkind.Socket}, Rule{Budget: 8 * sec}, fdkind.Socket, "smaller budget wins"},
		{"copy_file_range", []fdkind.Kind{fdkind.Regular, fdkind.Pipe, fdkind.Device}, Rule{Budget: 5 * sec, KillAfter: 30 * sec}, fdkind.Device, "tie: smaller kill_after, never last"},
		{"copy_file_range", []fdkind.Kind{fdkind.Pipe, fdkind.Regular}, Rule{Budget: 5 * sec, KillAfter: 40 * sec}, fdkind.Pipe, "tie: any kill_after beats never"},
		{"copy_file_range", []fdkind.Kind{fdkind.Socket, fdkind.Regular}, Rule{Budget: 5 * sec}, fdkind.Regular, "budget before kill_after"},
		{"unlisted", []fdkind.Kind{fdkind.Socket, fdkind.Pipe}, def, fdkind.Socket, "unlisted: the default, first kind"},
	}
	for _, c := range cases {
		got, by := tb.LookupFDs(c.syscall, c.kinds...)
		if got != c.want || by != c.by {
			t.Errorf("LookupFDs(%s, %v) = %v, %v; want %v, %v (%s)", c.syscall, c.kinds, got, by, c.want, c.by, c.why)
		}
	}
	for _, name := range tb.Names() {
		for _, k := range fdkind.Kinds() {
			if got, _ := tb.LookupFDs(name, k); got != tb.Lookup(name, k) {
				t.Errorf("LookupFDs(%s, %v) = %v differs from Lookup", name, k, got)
			}
		}
	}
}
