//go:build race

package status_test

// raceBuild is true under the race detector, which makes each emulated
// request about five times slower: the large-ledger test then reads fewer
// instances (go test without -race reads more than 10 000).
const raceBuild = true
