package ledger

import (
	"context"
	"errors"
)

// ErrExists is wrapped by Store.Create when an object already exists at the
// key: the conditional create lost (errors.Is(err, ErrExists)).
var ErrExists = errors.New("ledger: an entry already exists at this key")

// ErrNotFound is wrapped by Store.Get when no object exists at the key.
var ErrNotFound = errors.New("ledger: no entry at this key")

// Store is the object store the ledger keeps its entries in: an atomic
// create-if-absent, a read, a listing and a delete (shared/ossstore.Client satisfies it
// over OSS). Every error is classified with package fault (Retryable for
// throttling, 5xx, network trouble and timeouts; Permanent otherwise), and
// the two expected conditions are recognisable with errors.Is: ErrExists from
// Create, ErrNotFound from Get.
type Store interface {
	// Create writes body at key only if no object exists there, atomically
	// (two concurrent creates of one key: exactly one succeeds). It returns
	// an error wrapping ErrExists when an object is there already.
	Create(ctx context.Context, key string, body []byte) error
	// Get returns the object at key, or an error wrapping ErrNotFound.
	Get(ctx context.Context, key string) ([]byte, error)
	// List returns up to max keys that start with prefix and sort after
	// startAfter ("" for the first page), in lexical (byte) order, and
	// whether more keys follow.
	List(ctx context.Context, prefix, startAfter string, max int) (keys []string, more bool, err error)
	// Delete removes the object at key; removing a missing object is not
	// an error. The ledger deletes only an intent whose install call
	// started no task, to free the attempt for the chain's next try.
	Delete(ctx context.Context, key string) error
}
