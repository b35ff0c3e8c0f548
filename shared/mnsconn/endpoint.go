package mnsconn

import (
	"cmp"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"

	"github.com/hbr-autoinstall/hbr-autoinstall/shared/ident"
)

const (
	defaultAccountID = "1234567890"
	defaultRegion    = "cn-hangzhou"
)

// labelRule is what the account ID and region put in an MNS host name
// must look like.
var labelRule = ident.Rule{Min: 1, First: "A-Za-z0-9-", Rest: "A-Za-z0-9-"}

// endpoint is a checked Config.Endpoint.
type endpoint struct {
	sdk      string // what the SDK is given: always four dots
	loopAddr string // for a loopback emulator, the host:port to dial; else ""
}

// resolveEndpoint checks cfg.Endpoint and returns the endpoint to give the
// SDK and, for a loopback endpoint, the address to redirect to (sdk-notes
// §3.2 option 1). Its errors are bad configuration.
func resolveEndpoint(cfg Config) (endpoint, error) {
	ep := strings.TrimRight(cfg.Endpoint, "/")
	if ep == "" {
		return endpoint{}, errors.New("endpoint is empty")
	}
	u, err := url.Parse(ep)
	if err != nil {
		return endpoint{}, fmt.Errorf("endpoint %q: %w", ep, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return endpoint{}, fmt.Errorf("endpoint %q: scheme must be https (or http for a loopback emulator)", ep)
	}
	if u.Host == "" || u.User != nil || u.Path != "" || u.RawQuery != "" || u.Fragment != "" {
		return endpoint{}, fmt.Errorf("endpoint %q must be scheme://host[:port] with nothing after the host", ep)
	}
	host := u.Hostname()
	if ident.Loopback(host) {
		if u.Scheme != "http" {
			return endpoint{}, fmt.Errorf("endpoint %q: a loopback emulator is reached over http://", ep)
		}
		port := u.Port()
		if port == "" {
			port = "80"
		}
		account, region := cmp.Or(cfg.AccountID, defaultAccountID), cmp.Or(cfg.Region, defaultRegion)
		if !labelRule.Valid(account) || !labelRule.Valid(region) {
			return endpoint{}, fmt.Errorf("account ID %q and region %q may only hold letters, digits and '-'", account, region)
		}
		return endpoint{sdk: "http://" + account + ".mns." + region + ".aliyuncs.com", loopAddr: net.JoinHostPort(host, port)}, nil
	}
	if u.Scheme == "http" {
		return endpoint{}, fmt.Errorf(
			"endpoint %q: plain http is only allowed to a loopback emulator; use https://<accountId>.mns.<region>.aliyuncs.com", ep)
	}
	if strings.Count(ep, ".") != 4 {
		return endpoint{}, fmt.Errorf(
			"endpoint %q is not shaped https://<accountId>.mns.<region>.aliyuncs.com (the MNS SDK needs exactly four dots)", ep)
	}
	return endpoint{sdk: ep}, nil
}
