package semantics

// A DomainStore is a Store that several servers may share: every server
// whose store reports the same non-empty Domain sees the sessions and the
// completion records of the others, so a call that may have run on one of
// them may be sent again to another, which answers it from its record or
// runs it exactly once.
type DomainStore interface {
	Store
	// Domain names the shared store (the same for every server on it).
	Domain() string
}
