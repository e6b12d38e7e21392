package peer

// RejectReasons returns every name RejectReason can return, "other"
// last, so that metrics can report a zero for reasons not seen yet.
func RejectReasons() []string {
	out := make([]string, 0, len(reasons)+1)
	for _, r := range reasons {
		out = append(out, r.name)
	}
	return append(out, "other")
}
