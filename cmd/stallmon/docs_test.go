package main

import (
	"bytes"
	"regexp"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"

	"github.com/stallmon/stallmon/internal/testutil/docgen"
)

// docs/cli.md is every command's help, rendered by cobra's generator.
func TestCLIDoc(t *testing.T) {
	root := newRootCmd()
	root.DisableAutoGenTag = true
	var b bytes.Buffer
	b.WriteString(docgen.Header)
	b.WriteString("# Command line\n\nEvery command and flag of `stallmon`, as `--help` prints them.\n\n")
	var each func(c *cobra.Command)
	each = func(c *cobra.Command) {
		if !c.IsAvailableCommand() && c != root {
			return
		}
		c.DisableAutoGenTag = true
		var page bytes.Buffer
		if err := doc.GenMarkdownCustom(c, &page, func(name string) string { return "#" + anchor(name) }); err != nil {
			t.Fatalf("rendering %s: %v", c.CommandPath(), err)
		}
		// One page holds every command: their headings go one level down,
		// and the "SEE ALSO" lists, which link the other pages, go.
		text := seeAlso.ReplaceAllString(page.String(), "")
		text = regexp.MustCompile(`(?m)^(#+) `).ReplaceAllString(text, "#$1 ")
		b.WriteString(text)
		for _, sub := range c.Commands() {
			each(sub)
		}
	}
	each(root)
	docgen.Check(t, "docs/cli.md", b.Bytes())
}

var seeAlso = regexp.MustCompile(`(?s)### SEE ALSO\n.*?(\n\n|$)`)

// anchor is the heading id a markdown renderer gives a command's page.
func anchor(file string) string {
	return regexp.MustCompile(`\.md$`).ReplaceAllString(file, "")
}
