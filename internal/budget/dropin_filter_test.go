package budget

import (
	"testing"
)

// A drop-in that only raises work_waiting's budget (restating its
// kill_after, as keepsKill demands) keeps the main table's skip or only:
// dropping it would judge, and could kill for, the sockets the operator
// left out. A drop-in that writes skip or only (even empty) replaces it.
// (Found by the cold review of by_socket.)
func TestDropInRestatingWorkWaitingKeepsSkip(t *testing.T) {
	for _, tc := range []struct {
		name, main, dropIn string
		admin, app         bool // judged: port 9121 / /run/admin.sock, port 80
	}{
		{"skip kept", "skip: [9121, /run/admin.sock]", "", false, true},
		{"only kept", "only: [80]", "", false, true},
		{"skip replaced", "skip: [9121, /run/admin.sock]", ", skip: [80]", true, false},
		{"skip emptied", "skip: [9121, /run/admin.sock]", ", skip: []", true, true},
		{"skip turned to only", "skip: [80]", ", only: [9121, /run/admin.sock]", true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := tableDir(t, wwDefault+"  work_waiting: {budget: 1s, kill_after: 30s, "+tc.main+"}\n",
				map[string]string{"10-ww.yaml": "states:\n  work_waiting: {budget: 2s, kill_after: 30s" + tc.dropIn + "}\n"})
			tb, err := Load(path, nil)
			if err != nil {
				t.Fatal(err)
			}
			if got := tb.ProcessRule(WorkWaiting).Budget.String(); got != "2s" {
				t.Fatalf("budget %s, want the drop-in's 2s", got)
			}
			f := tb.WorkWaitingFilter()
			if got := f.Judges(9121, "") && f.Judges(0, "/run/admin.sock"); got != tc.admin {
				t.Errorf("admin sockets judged %v, want %v (filter %+v)", got, tc.admin, f)
			}
			if got := f.Judges(80, ""); got != tc.app {
				t.Errorf("port 80 judged %v, want %v (filter %+v)", got, tc.app, f)
			}
		})
	}
}
