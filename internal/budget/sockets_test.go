package budget

import (
	"bytes"
	"slices"
	"strings"
	"testing"
)

func TestSocketFilterParsed(t *testing.T) {
	tb := mustParse(t, wwDefault+"  work_waiting: {budget: 1s, only: [6379, /run/app.sock, \"@abs\"], by_socket: all}\n")
	want := []SocketName{{Port: 6379}, {Unix: "/run/app.sock"}, {Unix: "@abs"}}
	if f := tb.WorkWaitingFilter(); !slices.Equal(f.Only, want) || f.Skip != nil {
		t.Errorf("filter = %+v, want only %v", f, want)
	}
	if tb.WorkWaitingSockets() != AllSockets {
		t.Errorf("by_socket lost beside only")
	}
	tb = mustParse(t, wwDefault+"  work_waiting: {budget: 1s, skip: [9121]}\n")
	if f := tb.WorkWaitingFilter(); !slices.Equal(f.Skip, []SocketName{{Port: 9121}}) || f.Only != nil {
		t.Errorf("filter = %+v, want skip [9121]", f)
	}
	if f := mustParse(t, wwDefault+"  work_waiting: {budget: 1s}\n").WorkWaitingFilter(); !f.IsZero() {
		t.Errorf("no only or skip: filter %+v, want none", f)
	}
}

func TestSocketFilterJudges(t *testing.T) {
	only := SocketFilter{Only: []SocketName{{Port: 6379}, {Unix: "/run/app.sock"}}}
	skip := SocketFilter{Skip: []SocketName{{Port: 9121}, {Unix: "@admin"}}}
	for _, c := range []struct {
		f    SocketFilter
		port int
		addr string
		want bool
	}{
		{only, 6379, "127.0.0.1:6379", true},
		{only, 6380, "127.0.0.1:6380", false},
		{only, 0, "/run/app.sock", true},
		{only, 0, "/run/other.sock", false},
		{only, 0, "", false}, // an unbound unix socket is named by no path
		{skip, 9121, "[::1]:9121", false},
		{skip, 0, "@admin", false},
		{skip, 6379, "127.0.0.1:6379", true},
		{skip, 0, "", true},
		{SocketFilter{}, 80, "0.0.0.0:80", true},
	} {
		if got := c.f.Judges(c.port, c.addr); got != c.want {
			t.Errorf("%+v judges (%d, %q) = %v, want %v", c.f, c.port, c.addr, got, c.want)
		}
	}
}

// Format writes only and skip back (paths quoted: "@" cannot start a
// plain YAML scalar), and what it writes parses to the same.
func TestSocketFilterRoundTrip(t *testing.T) {
	tb := mustParse(t, wwDefault+"  work_waiting: {budget: 1s, kill_after: 3s, by_socket: all, skip: [9121, \"@admin\", /run/x.sock]}\n")
	var b bytes.Buffer
	if err := tb.Format(&b); err != nil {
		t.Fatal(err)
	}
	const line = `  work_waiting: {budget: 1s, kill_after: 3s, by_socket: all, skip: [9121, "@admin", "/run/x.sock"]}`
	if !strings.Contains(b.String(), line+"\n") {
		t.Fatalf("formatted table lacks %s:\n%s", line, b.String())
	}
	back := mustParse(t, b.String())
	if !slices.Equal(back.WorkWaitingFilter().Skip, tb.WorkWaitingFilter().Skip) || back.WorkWaitingSockets() != AllSockets {
		t.Errorf("round trip: %+v, want %+v", back.WorkWaitingFilter(), tb.WorkWaitingFilter())
	}
}

func TestSocketFilterRejected(t *testing.T) {
	for _, c := range []struct{ src, want string }{
		{"  work_waiting: {budget: 1s, only: [6379], skip: [80]}\n", "line 3: states: work_waiting: only and skip together"},
		{"  work_waiting: {budget: 1s, only: []}\n", "only: want a list of ports and unix addresses"},
		{"  work_waiting: {budget: 1s, only: 6379}\n", `only: want a list of ports and unix addresses, like [6379, /run/app.sock], got "6379"`},
		{"  work_waiting: {budget: 1s, skip: [0]}\n", "skip: port 0 is not in 1-65535"},
		{"  work_waiting: {budget: 1s, skip: [65536]}\n", "skip: port 65536 is not in 1-65535"},
		{"  work_waiting: {budget: 1s, skip: [http]}\n", `skip: want a port (1-65535), a unix path (/...) or an abstract name (@...), got "http"`},
		{"  work_waiting: {budget: 1s, skip: [\"127.0.0.1:80\"]}\n", `got "127.0.0.1:80"`},
		{"  work_waiting: {budget: 1s, skip: [[80]]}\n", "got a list"},
		{"  work_waiting: {budget: 1s, skip: [/]}\n", `got "/"`},
		{"  work_waiting: {budget: unbounded, only: [80]}\n", "need a budget"},
		{"  frozen: {budget: 1s, only: [80]}\n", "states: frozen: only is for the work_waiting rule only"},
	} {
		_, err := Parse([]byte(wwDefault+c.src), nil)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: err %v, want one containing %q", c.src, err, c.want)
		}
	}
}
