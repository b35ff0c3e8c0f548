// Package ledger is the instance ledger: it decides, with atomic conditional
// creates in an object store ([Store]; OSS in the cloud), which job owns each
// instance's install and outcome, so that every function may run many
// invocations at once and an instance is still installed once and recorded
// once — by construction, not by a lock.
//
// # Entries
//
// Every entry is a small JSON object that is created once and never
// overwritten (the store's create-if-absent is the only write). The keys of
// one instance share a prefix:
//
//	<prefix><account>/<region>/<instance>/g000001/claim      who owns generation 1
//	<prefix><account>/<region>/<instance>/g000001/intent-01  attempt 1 is being installed
//	<prefix><account>/<region>/<instance>/g000001/task-01    attempt 1's HBR task
//	<prefix><account>/<region>/<instance>/g000001/final      the generation's outcome
//	<prefix><account>/<region>/<instance>/g000002/claim      a later generation
//
// The account and region are part of the key so that one deployment can
// later serve several accounts from one bucket.
//
// # Rules
//
//   - Claim: before anything is installed, the announcing job creates the
//     next generation's claim. Exactly one announcement wins it and owns the
//     install and the outcome ([Owned]); every other announcement of the
//     instance joins that owner ([Joined]) and records nothing. A redelivered
//     owner finds its own claim and resumes ([Resumed]).
//   - Lease: a generation is held until the lease of its latest claim or task
//     passes ([State.LeaseUntil]). A generation with no final entry whose
//     lease has passed is taken over by the next announcement (or the
//     reconcile sweep): a new generation that inherits the dead chain's task.
//   - Intent and task: an owner creates an intent before each
//     InstallBackupClients call and the task entry after it ([Ledger.Begin],
//     [Ledger.RecordTask]), so two deliveries of one chain never install one
//     attempt twice, and a redelivery resumes from the recorded task.
//   - Final: one final entry per generation, a conditional create too
//     ([Ledger.Finish]); whatever is delivered twice, a generation ends with
//     one outcome. A later generation's outcome (a restart after a failure, a
//     takeover) names the record it supersedes.
//
// Errors: every method returns the store's classified errors (package
// fault) wrapped with the key they concern; an entry that cannot be decoded
// is a fault.Invalid error naming its key; an instance still contended
// after a few rounds is fault.Retryable.
package ledger
