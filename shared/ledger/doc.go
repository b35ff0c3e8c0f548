// Package ledger is the instance ledger: which job owns each instance's
// install and outcome, decided by atomic conditional creates in an object
// store, so that every function may scale out and an instance is still
// installed once and recorded once.
package ledger
