package workload

import (
	"slices"
	"testing"
)

func TestLineRoundTrip(t *testing.T) {
	l, err := ParseLine(formatLine("round", "n", 2, "tids", joinInts([]int{5, 7})))
	if err != nil {
		t.Fatal(err)
	}
	if l.Word != "round" || l.Fields["n"] != "2" {
		t.Errorf("parsed %+v", l)
	}
	tids, err := l.Fields.Ints("tids")
	if err != nil || !slices.Equal(tids, []int{5, 7}) {
		t.Errorf("tids=%v err=%v, want [5 7]", tids, err)
	}
	if _, err := l.Fields.Int("missing"); err == nil {
		t.Errorf("Int of a missing key succeeded")
	}
}

func TestParseLineRejectsBareWords(t *testing.T) {
	for _, s := range []string{"", "ok tid=1 stray", "ok =3"} {
		if l, err := ParseLine(s); err == nil {
			t.Errorf("ParseLine(%q) = %+v, want an error", s, l)
		}
	}
}

func TestSleepsIn(t *testing.T) {
	for _, tc := range []struct {
		text string
		want bool
	}{
		{"0 0x5 0x7f0000 0x1000 0x0 0x0 0x0 0x7ffd 0x4a1b", true},
		{"0 0x6 0x7f0000 0x1000 0x0 0x0 0x0 0x7ffd 0x4a1b", false},
		{"1 0x5 0x7f0000 0x1000 0x0 0x0 0x0 0x7ffd 0x4a1b", false},
		{"running", false},
		{"-1 0x7ffd 0x4a1b", false},
	} {
		if got := SleepsIn(tc.text, 0, 5); got != tc.want {
			t.Errorf("SleepsIn(%q, 0, 5) = %v, want %v", tc.text, got, tc.want)
		}
	}
}
