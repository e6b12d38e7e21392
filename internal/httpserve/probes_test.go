package httpserve

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestProbes(t *testing.T) {
	for _, c := range []struct {
		name          string
		live, ready   bool
		reason        string
		livez, readyz int
	}{
		{"healthy", true, true, "", 200, 200},
		{"stalled", true, false, "stalled: thread 7", 200, 503},
		{"loop stuck", false, false, "the agent's loop has not polled for 5.0s", 503, 503},
	} {
		p := Probes(func() (bool, bool, string) { return c.live, c.ready, c.reason })
		for path, want := range map[string]int{"/livez": c.livez, "/readyz": c.readyz} {
			rec := httptest.NewRecorder()
			p[path].ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
			body := strings.TrimSpace(rec.Body.String())
			wantBody := "ok"
			if want != 200 {
				wantBody = c.reason
			}
			if rec.Code != want || body != wantBody {
				t.Errorf("%s %s: %d %q, want %d %q", c.name, path, rec.Code, body, want, wantBody)
			}
		}
	}
}
