package budget

import (
	"errors"
	"regexp"
	"testing"
	"time"
)

func TestFormatShape(t *testing.T) {
	tb := mustParse(t, `default: {budget: 5s, kill_after: 60s}
syscalls:
  write:
    budget: unbounded
    by_fd: {regular: {budget: 90s, kill_after: 3600s}}
  fsync: {budget: 1500ms, kill_after: never}
  accept: unbounded
  read:
    by_fd: {other: unbounded, socket: unbounded}
`)
	want := `default: {budget: 5s, kill_after: 1m}
states:
  uninterruptible: {budget: 5s, kill_after: 1m}
  running: {budget: 5s, kill_after: 1m}
  page_fault: {budget: 5s, kill_after: 1m}
  stopped: {budget: 5s, kill_after: never}
  traced: {budget: 5s, kill_after: never}
  frozen: {budget: 5s, kill_after: never}
  dumping_core: {budget: 5s, kill_after: never}
  exiting: {budget: 5s, kill_after: 1m}
  work_waiting: unbounded
syscalls:
  accept: unbounded
  fsync: {budget: 1.5s, kill_after: never}
  read:
    budget: 5s
    kill_after: 1m
    by_fd:
      socket: unbounded
      other: unbounded
  write:
    budget: unbounded
    by_fd:
      regular: {budget: 1m30s, kill_after: 1h}
`
	if got := format(t, tb); got != want {
		t.Errorf("Format:\n%s\nwant:\n%s", got, want)
	}
}

func TestFormatEmpty(t *testing.T) {
	tb := mustParse(t, "default: unbounded\n")
	want := "default: unbounded\nstates:\n" +
		"  uninterruptible: unbounded\n  running: unbounded\n  page_fault: unbounded\n  stopped: unbounded\n  traced: unbounded\n" +
		"  frozen: unbounded\n  dumping_core: unbounded\n  exiting: unbounded\n  work_waiting: unbounded\n" +
		"syscalls: {}\n"
	if got := format(t, tb); got != want {
		t.Errorf("Format = %q", got)
	}
}

func TestFormatRoundTrip(t *testing.T) {
	def, err := Default(nil)
	if err != nil {
		t.Fatal(err)
	}
	overridden, err := def.WithDefaults(dur(1500*time.Millisecond), dur(0))
	if err != nil {
		t.Fatal(err)
	}
	tables := map[string]*Table{
		"default":    def,
		"overridden": overridden,
		"precedence": mustParse(t, precedenceTable),
		"override":   mustParse(t, overrideTable),
		"states":     mustParse(t, stateTable),
	}
	for name, tb := range tables {
		text := format(t, tb)
		back, err := Parse([]byte(text), nil)
		if err != nil {
			t.Errorf("%s: Format output does not parse: %v\n%s", name, err, text)
			continue
		}
		if d := sameBehaviour(tb, back); d != "" {
			t.Errorf("%s: round trip changed %s\n%s", name, d, text)
		}
		// The origins are comments: parsed back, the table has none.
		if again := format(t, back); again != withoutOrigins(text) {
			t.Errorf("%s: Format is not stable:\n%s\nthen\n%s", name, text, again)
		}
	}
}

// withoutOrigins drops Format's "  # from ..." comments.
func withoutOrigins(text string) string {
	return regexp.MustCompile(`(?m)  # from .*$`).ReplaceAllString(text, "")
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func TestFormatWriteError(t *testing.T) {
	err := mustParse(t, "default: unbounded\n").Format(failWriter{})
	if err == nil || err.Error() != "write budget table: disk full" {
		t.Errorf("Format to a failing writer: %v", err)
	}
}
