// Package identity is who an agent speaks for on the wire and in the
// integrations: the node id (given, or derived from the host and the
// watched service), the lock that keeps two agents on one host from
// speaking for one node, and the incarnation number that grows from one
// run of a node to the next, persisted in a state directory so that it
// grows even when the clock steps back.
package identity
