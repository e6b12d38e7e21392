package httpserve

import (
	"fmt"
	"net/http"
)

// Probes answer as Kubernetes probes expect: 200 and "ok", or 503 and the
// reason. /livez: stallmon's loop is polling. /readyz: the heartbeat may
// say ALIVE (no stall, a fresh poll, not fenced). health reports both and
// why not, from any goroutine.
func Probes(health func() (live, ready bool, reason string)) map[string]http.Handler {
	answer := func(ok func(live, ready bool) bool) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			live, ready, reason := health()
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.Header().Set("Cache-Control", "no-store")
			if ok(live, ready) {
				fmt.Fprintln(w, "ok")
				return
			}
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintln(w, reason)
		})
	}
	return map[string]http.Handler{
		"/livez":  answer(func(live, _ bool) bool { return live }),
		"/readyz": answer(func(live, ready bool) bool { return live && ready }),
	}
}
