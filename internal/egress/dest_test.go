package egress

import (
	"strings"
	"testing"
)

func TestParseDest(t *testing.T) {
	for in, want := range map[string]string{
		"udp:239.1.2.3:5000":       "udp:239.1.2.3:5000",
		"UDP:239.1.2.3:5000":       "udp:239.1.2.3:5000",
		"udp:[ff02::1]:5000":       "udp:[ff02::1]:5000",
		"tcp:192.0.2.2:7000":       "tcp:192.0.2.2:7000",
		"udp:[::ffff:192.0.2.2]:9": "udp:192.0.2.2:9",
	} {
		d, err := ParseDest(in)
		if err != nil || d.String() != want {
			t.Errorf("ParseDest(%q) = %v, %v; want %s", in, d, err, want)
		}
	}
	for in, why := range map[string]string{
		"239.1.2.3:5000":        "want udp or tcp",
		"udp":                   "want PROTO:ADDR:PORT",
		"sctp:192.0.2.2:5000":   "want udp or tcp",
		"udp:239.1.2.3":         "want ADDR:PORT",
		"udp:ff02::1:5000":      "brackets",
		"udp:239.1.2.3:0":       "port 0",
		"udp:239.1.2.3:70000":   "70000",
		"udp:0.0.0.0:5000":      "names no destination",
		"udp:[fe80::1%lo]:5000": "zone",
		"tcp:239.1.2.3:5000":    "no multicast",
		"udp:host.example:5000": "host.example",
	} {
		_, err := ParseDest(in)
		if err == nil || !strings.Contains(err.Error(), why) {
			t.Errorf("ParseDest(%q) = %v, want an error saying %q", in, err, why)
		}
	}
	if _, err := ParseDests([]string{"udp:239.1.2.3:5000", "udp:239.1.2.3:5000"}); err == nil || !strings.Contains(err.Error(), "twice") {
		t.Errorf("a destination given twice: %v", err)
	}
}
