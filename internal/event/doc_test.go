package event

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/stallmon/stallmon/internal/testutil/docgen"
)

// docs/events.md is All, rendered.
func TestEventsDoc(t *testing.T) {
	var b bytes.Buffer
	b.WriteString(docgen.Header)
	b.WriteString(`# Events

Every log record's ` + "`msg`" + ` is one of these names (` + "`--log-format json`" + `
prints one object per line); a sentence for a person goes in a ` + "`detail`" + `
attribute, an error in ` + "`err`" + `. The list is internal/event/list.go, and a test
fails on a log call whose message is not in it.

| event | logged by | what it says |
|---|---|---|
`)
	for _, e := range All {
		fmt.Fprintf(&b, "| `%s` | %s | %s |\n", e.Name, e.Who, e.Doc)
	}
	docgen.Check(t, "docs/events.md", b.Bytes())
}
