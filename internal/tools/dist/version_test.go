package main

import (
	"testing"
	"time"
)

func TestPackageVersion(t *testing.T) {
	date := time.Date(2026, 12, 7, 17, 45, 48, 0, time.UTC)
	for describe, want := range map[string]string{
		"v1.2.3":                  "1.2.3",
		"1.2.3":                   "1.2.3",
		"v1.2.3-dirty":            "1.2.3+dirty",
		"v1.2.3-4-gbf40751":       "1.2.3+4.gbf40751",
		"v1.2.3-4-gbf40751-dirty": "1.2.3+4.gbf40751.dirty",
		"bf40751":                 "0.0.0+git20261207174548.bf40751",
		"bf40751-dirty":           "0.0.0+git20261207174548.bf40751.dirty",
	} {
		if got := packageVersion(describe, date); got != want {
			t.Errorf("packageVersion(%q) = %q, want %q", describe, got, want)
		}
	}
}
