package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hbr-autoinstall/hbr-autoinstall/shared/cloudauth"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/ledger"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/localcloud/callers"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/localcloud/osssim"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/localcloud/rpcsim"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/ossstore"
)

const (
	region  = "cn-shanghai"
	account = "5555"
	bucket  = "hbr-autoinstall-ledger-5555-cn-shanghai"
)

var operator = cloudauth.Credentials{AccessKeyID: "LTAIoperator", AccessKeySecret: "operator-secret"}

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

var withKeys = env(map[string]string{
	"ALIBABA_CLOUD_ACCESS_KEY_ID": operator.AccessKeyID, "ALIBABA_CLOUD_ACCESS_KEY_SECRET": operator.AccessKeySecret})

var now = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// ledgerOSS starts the OSS emulator for region with a ledger of two
// instances, written through the SDK: one INSTALLED, one claimed long ago
// and never finished.
func ledgerOSS(t *testing.T) string {
	t.Helper()
	sim := osssim.New(osssim.Options{Region: region, Principals: callers.Set{{Name: "operator", Credentials: operator}}})
	url, err := sim.Start()
	require.NoError(t, err)
	t.Cleanup(func() { _ = sim.Close() })
	sim.CreateBucket(bucket)
	store, err := ossstore.New(ossstore.Config{Endpoint: url, Region: region, Bucket: bucket}, operator)
	require.NoError(t, err)
	at := now.Add(-2 * time.Hour)
	l := &ledger.Ledger{Store: store, Prefix: "hbr-autoinstall/ledger/", Account: account, Lease: 30 * time.Minute,
		Now: func() time.Time { return at }}
	ctx := context.Background()
	for _, id := range []string{"i-done", "i-stuck"} {
		d, err := l.Claim(ctx, ledger.Announcement{Region: region, Instance: id, Job: "j-" + id, EventTime: at})
		require.NoError(t, err)
		if id == "i-done" {
			_, err = l.Finish(ctx, d.Owner, ledger.Final{Outcome: "INSTALLED", Reason: "the client is ACTIVATED"})
			require.NoError(t, err)
		}
	}
	return url
}

func TestStatusPrintsTheLedger(t *testing.T) {
	t.Parallel()
	url := ledgerOSS(t)
	sts := rpcsim.New(rpcsim.Options{Product: "sts", Version: "2015-04-01", AccessKeyID: operator.AccessKeyID, AccessKeySecret: operator.AccessKeySecret})
	sts.Handle("GetCallerIdentity", func(rpcsim.Request) (map[string]any, *rpcsim.APIError) {
		return map[string]any{"AccountId": account}, nil
	})
	stsURL, err := sts.Start()
	require.NoError(t, err)
	t.Cleanup(func() { _ = sts.Close() })

	tests := []struct {
		name string
		args []string
	}{
		{"account given", []string{"-account", account}},
		{"account looked up", []string{"-sts-endpoint", stsURL}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var stdout, stderr bytes.Buffer
			args := append([]string{"-region", region, "-endpoint", url}, tt.args...)
			require.NoError(t, run(context.Background(), args, withKeys, func() time.Time { return now }, &stdout, &stderr), stderr.String())
			out := stdout.String()
			assert.Contains(t, out, "bucket "+bucket+"\n")
			assert.Contains(t, out, "instance ledger hbr-autoinstall/ledger/5555/cn-shanghai/ (region cn-shanghai) at 2026-03-01T12:00:00Z: 2 instances")
			assert.Contains(t, out, "i-done    1    final  INSTALLED: the client is ACTIVATED")
			assert.Contains(t, out, "i-stuck   1    stale  claimed by j-i-stuck at 2026-03-01T10:00:00Z, lease passed at 2026-03-01T10:30:00Z")
			assert.Contains(t, out, "summary: 2 instances: 1 final (INSTALLED 1), 1 stale")
			assert.Contains(t, out, "not protected: 1\n  i-stuck  stale: ")
		})
	}
}

func TestStatusJSON(t *testing.T) {
	t.Parallel()
	url := ledgerOSS(t)
	var stdout, stderr bytes.Buffer
	args := []string{"-region", region, "-endpoint", url, "-account", account, "-json", "-policy-expected", "-workers", "1"}
	require.NoError(t, run(context.Background(), args, withKeys, func() time.Time { return now }, &stdout, &stderr), stderr.String())
	var doc struct {
		Instances []struct {
			Instance string `json:"instanceId"`
			State    string `json:"state"`
		} `json:"instances"`
		Summary struct {
			Instances, Protected, Unprotected, Stale int
		} `json:"summary"`
		Unprotected []struct {
			Instance string `json:"instanceId"`
		} `json:"unprotected"`
	}
	require.NoError(t, json.Unmarshal(stdout.Bytes(), &doc))
	require.Len(t, doc.Instances, 2)
	assert.Equal(t, "final", doc.Instances[0].State)
	assert.Equal(t, 2, doc.Summary.Instances)
	assert.Equal(t, 0, doc.Summary.Protected, "INSTALLED is not protected when a policy is expected")
	assert.Equal(t, 2, doc.Summary.Unprotected)
	assert.Equal(t, 1, doc.Summary.Stale)
	assert.Len(t, doc.Unprotected, 2)
}

func TestStatusFails(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	closed := "http://" + ln.Addr().String()
	require.NoError(t, ln.Close())
	tests := []struct {
		name     string
		args     []string
		getenv   func(string) string
		wantRead bool
		want     string
	}{
		{"no credentials", []string{"-account", account}, env(nil), false, "the ledger is read with your AccessKey"},
		{"stray argument", []string{"extra"}, withKeys, false, "unexpected arguments"},
		{"bad bucket", []string{"-account", account, "-bucket", "Bad_Bucket"}, withKeys, false, "bucket"},
		{"nothing listening", []string{"-account", account, "-endpoint", closed, "-timeout", "2s"}, withKeys, true, "oss.ListObjectsV2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var stdout, stderr bytes.Buffer
			err := run(context.Background(), append([]string{"-region", region}, tt.args...), tt.getenv, time.Now, &stdout, &stderr)
			require.Error(t, err)
			assert.Equal(t, tt.wantRead, errors.Is(err, errRead), "%v", err)
			assert.Contains(t, err.Error(), tt.want)
		})
	}
}
