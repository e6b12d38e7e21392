package e2e

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// Every configuration snippet in docs/integrations.md is a verbatim part
// of a deploy/ file linked just before it, the file the integration's
// tests run: the page cannot drift from what was tested.
func TestDocsIntegrationSnippetsAreTested(t *testing.T) {
	const page = "docs/integrations.md"
	text := docPage(t, page)
	// Links from docs/ to the shipped files climb out of it first.
	link := regexp.MustCompile(`\(\.\./(deploy/[^)#]+)\)`)
	// The deploy files linked before a snippet; snippets that follow one
	// another share the links before the first.
	var linked []string
	stale := false
	var block []string
	in, blocks := false, 0
	for line := range strings.Lines(text) {
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
					t.Errorf("%s links %s: %v", page, f, err)
					continue
				}
				found = found || strings.Contains(string(content), snippet)
			}
			if !found {
				t.Errorf("%s: snippet is in none of %v:\n%s", page, linked, snippet)
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
		t.Errorf("found %d snippets in %s, want one or more per integration", blocks, page)
	}
}

// docPage is the page at rel, a path from the source tree's root.
func docPage(t *testing.T, rel string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(rel)))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
