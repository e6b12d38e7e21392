package budget

import (
	"testing"
)

// Review (r-sockets): a drop-in that only raises work_waiting's budget
// (and restates its kill_after, as keepsKill demands) silently drops the
// main table's skip: the admin port the operator left out is judged
// again, and clients queued on it now fail the node over and kill the
// service. The same drop-in over a kill_after is refused
// (TestBudgetOnlyRuleOverKillAfterRefused); a skip or only, which guards
// against kills just as much, is lost without a word. Either keep it or
// refuse the drop-in, naming the list it would drop.
func TestReviewDropInKeepsOrRefusesSkip(t *testing.T) {
	path := tableDir(t, wwDefault+"  work_waiting: {budget: 1s, kill_after: 30s, skip: [9121, /run/admin.sock]}\n",
		map[string]string{"10-ww.yaml": "states:\n  work_waiting: {budget: 2s, kill_after: 30s}\n"})
	tb, err := Load(path, nil)
	if err != nil {
		return // refused: the operator hears of it
	}
	if f := tb.WorkWaitingFilter(); f.Judges(9121, "") || f.Judges(0, "/run/admin.sock") {
		t.Fatalf("WRONG KILL RISK: a drop-in that raised the budget silently dropped skip: [9121, /run/admin.sock]; filter now %+v judges the skipped sockets", f)
	}
}
