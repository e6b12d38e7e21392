package e2e

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// Every configuration snippet in the README's Integrations section is a
// verbatim part of a deploy/ file linked just before it, the file the
// integration's tests run: the README cannot drift from what was tested.
func TestREADMEIntegrationSnippetsAreTested(t *testing.T) {
	section := readmeSection(t, "Integrations")
	link := regexp.MustCompile(`\((deploy/[^)#]+)\)`)
	// The deploy files linked before a snippet; snippets that follow one
	// another share the links before the first.
	var linked []string
	stale := false
	var block []string
	in, blocks := false, 0
	for line := range strings.Lines(section) {
		line = strings.TrimRight(line, "\n")
		switch {
		case strings.HasPrefix(line, "```") && !in:
			in, block = true, nil
		case strings.HasPrefix(line, "```") && in:
			in = false
			blocks++
			snippet := strings.Join(block, "\n")
			found := false
			for _, f := range linked {
				content, err := os.ReadFile(filepath.Join(root, f))
				if err != nil {
					t.Errorf("README links %s: %v", f, err)
					continue
				}
				found = found || strings.Contains(string(content), snippet)
			}
			if !found {
				t.Errorf("README snippet is in none of %v:\n%s", linked, snippet)
			}
			stale = true
		case in:
			block = append(block, line)
		default:
			for _, m := range link.FindAllStringSubmatch(line, -1) {
				if stale {
					linked, stale = nil, false
				}
				linked = append(linked, m[1])
			}
		}
	}
	if blocks < 5 {
		t.Errorf("found %d snippets in the Integrations section, want one or more per integration", blocks)
	}
}

// readmeSection is the README's "## title" section, up to the next one.
func readmeSection(t *testing.T, title string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	start := strings.Index(text, "\n## "+title+"\n")
	if start < 0 {
		t.Fatalf("README has no %s section", title)
	}
	section := text[start+1:]
	if end := strings.Index(section[3:], "\n## "); end >= 0 {
		section = section[:end+3]
	}
	return section
}
