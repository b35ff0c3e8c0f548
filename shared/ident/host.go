package ident

import (
	"net"
	"strings"
)

// Loopback reports whether host (a host name or IP, without port) is
// "localhost" or a loopback address. The project allows plain http only to
// such hosts: the local emulators.
func Loopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
