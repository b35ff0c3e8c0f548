package idorder_test

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/hbr-autoinstall/hbr-autoinstall/shared/localcloud/idorder"
)

func TestSetKeepsItsOrderAsItGrows(t *testing.T) {
	var s idorder.Set
	assert.Empty(t, s.Sorted())
	for _, id := range []string{"i-c", "i-a"} {
		s.Add(id)
	}
	assert.Equal(t, []string{"i-a", "i-c"}, s.Sorted())
	for _, id := range []string{"i-d", "i-b", "i-0"} {
		s.Add(id)
	}
	assert.Equal(t, []string{"i-0", "i-a", "i-b", "i-c", "i-d"}, s.Sorted(), "added ones merge in")
	s.Remove("i-b")
	s.Remove("i-zz")
	s.Add("i-e")
	s.Remove("i-e")
	assert.Equal(t, []string{"i-0", "i-a", "i-c", "i-d"}, s.Sorted())
}
