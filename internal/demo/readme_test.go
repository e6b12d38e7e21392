package demo

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stallmon/stallmon/internal/testutil/repo"
)

// The README tells the demo's story with the demo's own settings: change
// one here and the README must follow.
func TestReadmeTellsTheDemo(t *testing.T) {
	b, err := os.ReadFile(repo.Path(t, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	// The README wraps its lines: compare words.
	readme := strings.Join(strings.Fields(string(b)), " ")
	ms := func(d time.Duration) string { return fmt.Sprintf("%d ms", d.Milliseconds()) }
	for _, want := range []string{
		"sudo make demo",
		"loopback every " + ms(ownInterval),
		"--gate-egress",
		"takes over after " + ms(ownSilence) + " of silence",
		"`egress_closed`",
	} {
		if !strings.Contains(readme, want) {
			t.Errorf("README.md lacks %q", want)
		}
	}
}
