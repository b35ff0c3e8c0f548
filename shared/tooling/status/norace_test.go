//go:build !race

package status_test

// raceBuild: see race_test.go.
const raceBuild = false
