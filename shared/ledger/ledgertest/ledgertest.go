// Package ledgertest is an in-memory ledger.Store for unit tests of the
// packages that use the ledger. The store's wire behaviour is tested where
// it belongs, against the OSS emulator (shared/ossstore).
package ledgertest

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/hbr-autoinstall/hbr-autoinstall/shared/fault"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/ledger"
)

// Store is a goroutine-safe in-memory ledger.Store. FailNext makes the next
// calls fail with Err (a fault.Retryable error by default).
type Store struct {
	mu      sync.Mutex
	objects map[string][]byte
	// Calls counts calls by method name.
	calls map[string]int
	fail  int
	err   error
}

// New returns an empty store.
func New() *Store { return &Store{objects: map[string][]byte{}, calls: map[string]int{}} }

// FailNext makes the next n calls fail with err (nil: a retryable
// "ServiceUnavailable").
func (s *Store) FailNext(n int, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err == nil {
		err = fault.Wrap("memstore", fault.Retryable, "ServiceUnavailable", fmt.Errorf("injected failure"))
	}
	s.fail, s.err = n, err
}

func (s *Store) enter(method string) error {
	s.calls[method]++
	if s.fail > 0 {
		s.fail--
		return s.err
	}
	return nil
}

// Create implements ledger.Store.
func (s *Store) Create(_ context.Context, key string, body []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.enter("Create"); err != nil {
		return err
	}
	if _, ok := s.objects[key]; ok {
		return fault.Wrap("memstore.Create", fault.Permanent, "FileAlreadyExists", fmt.Errorf("%s: %w", key, ledger.ErrExists))
	}
	s.objects[key] = append([]byte(nil), body...)
	return nil
}

// Get implements ledger.Store.
func (s *Store) Get(_ context.Context, key string) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.enter("Get"); err != nil {
		return nil, err
	}
	b, ok := s.objects[key]
	if !ok {
		return nil, fault.Wrap("memstore.Get", fault.Permanent, "NoSuchKey", fmt.Errorf("%s: %w", key, ledger.ErrNotFound))
	}
	return append([]byte(nil), b...), nil
}

// List implements ledger.Store.
func (s *Store) List(_ context.Context, prefix, startAfter string, max int) ([]string, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.enter("List"); err != nil {
		return nil, false, err
	}
	var keys []string
	for k := range s.objects {
		if strings.HasPrefix(k, prefix) && k > startAfter {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	if max > 0 && len(keys) > max {
		return keys[:max], true, nil
	}
	return keys, false, nil
}

// Delete implements ledger.Store.
func (s *Store) Delete(_ context.Context, key string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.enter("Delete"); err != nil {
		return err
	}
	delete(s.objects, key)
	return nil
}

// Put writes an object unconditionally (a test's own setup, or a corrupt
// entry).
func (s *Store) Put(key string, body []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.objects[key] = append([]byte(nil), body...)
}

// Keys returns every key, sorted.
func (s *Store) Keys() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	keys := make([]string, 0, len(s.objects))
	for k := range s.objects {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// Calls returns how often each method was called.
func (s *Store) Calls() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]int{}
	for k, v := range s.calls {
		out[k] = v
	}
	return out
}
