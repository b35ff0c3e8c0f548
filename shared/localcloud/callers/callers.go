// Package callers names who calls the local cloud's emulators. A local cloud
// hands each function its own key pair (as Function Compute hands each
// function its role's credentials), and every emulator accepts the set and
// reports, with each call, which principal signed it: that is how the
// reports count the API calls each function makes.
package callers

import "github.com/hbr-autoinstall/hbr-autoinstall/shared/cloudauth"

// Principal is one key pair an emulator accepts, named for reports.
type Principal struct {
	// Name is what reports call the caller ("install", "poller", …).
	Name string
	// Credentials are its access key pair and, when set, the STS token
	// every request it signs must carry.
	Credentials cloudauth.Credentials
}

// Set is the principals an emulator accepts.
type Set []Principal

// Lookup returns the principal whose access key id is id.
func (s Set) Lookup(id string) (Principal, bool) {
	for _, p := range s {
		if p.Credentials.AccessKeyID == id {
			return p, true
		}
	}
	return Principal{}, false
}
