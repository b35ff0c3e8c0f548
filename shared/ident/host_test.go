package ident

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestLoopback(t *testing.T) {
	for host, want := range map[string]bool{
		"localhost": true, "LocalHost": true, "127.0.0.1": true, "127.9.8.7": true, "::1": true,
		"": false, "10.0.0.1": false, "localhost.evil.com": false, "hbr.cn-hangzhou.aliyuncs.com": false, "[::1]": false,
	} {
		assert.Equal(t, want, Loopback(host), host)
	}
}
