package workload

import (
	"fmt"
	"strconv"
	"strings"
)

// Fields holds the key=value pairs of one protocol line.
type Fields map[string]string

// Int returns the value of key as a decimal integer.
func (f Fields) Int(key string) (int, error) {
	v, ok := f[key]
	if !ok {
		return 0, fmt.Errorf("no %s= in reply", key)
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0, fmt.Errorf("reply %s=%q: %w", key, v, err)
	}
	return n, nil
}

// Ints returns the value of key as a comma-separated list of integers.
func (f Fields) Ints(key string) ([]int, error) {
	v, ok := f[key]
	if !ok {
		return nil, fmt.Errorf("no %s= in reply", key)
	}
	if v == "" {
		return nil, nil
	}
	parts := strings.Split(v, ",")
	out := make([]int, len(parts))
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil {
			return nil, fmt.Errorf("reply %s=%q: %w", key, v, err)
		}
		out[i] = n
	}
	return out, nil
}

// Line is one protocol line: its first word ("ready", "ok", "round", ...)
// and the key=value pairs after it.
type Line struct {
	Word   string
	Fields Fields
}

// ParseLine splits a line that is not an "err" line into its word and
// fields. Anything but key=value after the word is a protocol violation.
func ParseLine(s string) (Line, error) {
	words := strings.Fields(s)
	if len(words) == 0 {
		return Line{}, fmt.Errorf("empty protocol line")
	}
	l := Line{Word: words[0], Fields: Fields{}}
	for _, w := range words[1:] {
		k, v, ok := strings.Cut(w, "=")
		if !ok || k == "" {
			return Line{}, fmt.Errorf("protocol line %q: %q is not key=value", s, w)
		}
		l.Fields[k] = v
	}
	return l, nil
}

// formatLine is the writing half of ParseLine; pairs alternate key, value.
func formatLine(word string, pairs ...any) string {
	var b strings.Builder
	b.WriteString(word)
	for i := 0; i+1 < len(pairs); i += 2 {
		fmt.Fprintf(&b, " %v=%v", pairs[i], pairs[i+1])
	}
	return b.String()
}

func joinInts(ns []int) string {
	s := make([]string, len(ns))
	for i, n := range ns {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, ",")
}
