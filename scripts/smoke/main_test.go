package main

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hbr-autoinstall/hbr-autoinstall/shared/cloudauth"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/ledger"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/localcloud/callers"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/localcloud/osssim"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/ossstore"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/tooling/smoke"
)

// fakeS is a stand-in for the Serverless Devs CLI: invoke answers with the
// REGION it was given, logs finds a GONE record for the searched instance.
const fakeS = `#!/bin/sh
case "$2" in
invoke) printf 'Invoke Result:\n{"accepted":1,"region":"%s"}\n' "$REGION" ;;
logs)
  while [ $# -gt 0 ]; do [ "$1" = --search ] && id=$2; shift; done
  printf 'c-1 2030-01-01 0:00:00 {"msg":"outcome","instanceId":"%s","outcome":"GONE","code":"InstanceNotExists"}\n' "$id" ;;
*) echo "unexpected: $*" >&2; exit 1 ;;
esac
`

func TestRunWithTheCLI(t *testing.T) {
	t.Parallel()
	s := filepath.Join(t.TempDir(), "s")
	require.NoError(t, os.WriteFile(s, []byte(fakeS), 0o755))
	var stdout, stderr bytes.Buffer
	verdict, err := run(context.Background(), []string{"-s", s, "-region", "cn-beijing", "-poll", "10ms", "-timeout", "5s"},
		[]string{"PATH=" + os.Getenv("PATH")}, func(string) string { return "" }, &stdout, &stderr)
	require.NoError(t, err, stderr.String())
	assert.Equal(t, smoke.Pass, verdict)
	assert.Contains(t, stdout.String(), "smoke cn-beijing: PASS  install recorded GONE")
	assert.Contains(t, stdout.String(), `answer    {"accepted":1,"region":"cn-beijing"}`)
	assert.Contains(t, stdout.String(), "queue     hbr-autoinstall-dlq (dead-letter): depth unknown: not read: set ALIBABA_CLOUD_ACCESS_KEY_ID")
	assert.Contains(t, stderr.String(), "queue depths and ledger not read: set ALIBABA_CLOUD_ACCESS_KEY_ID")
	assert.NotContains(t, stdout.String(), "ledger    ")
}

func TestRunRejectsArguments(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	_, err := run(context.Background(), []string{"extra"}, nil, func(string) string { return "" }, &out, &out)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "unexpected arguments")
}

// TestRunReadsTheLedger: with an AccessKey, make smoke reads the ledger
// (here the OSS emulator, through the SDK) for the synthetic instance.
func TestRunReadsTheLedger(t *testing.T) {
	t.Parallel()
	const (
		instance = "i-smoketest0000000042"
		bucket   = "hbr-autoinstall-ledger-5555-cn-beijing"
	)
	key := cloudauth.Credentials{AccessKeyID: "LTAIoperator", AccessKeySecret: "operator-secret"}
	sim := osssim.New(osssim.Options{Region: "cn-beijing", Principals: callers.Set{{Name: "operator", Credentials: key}}})
	url, err := sim.Start()
	require.NoError(t, err)
	t.Cleanup(func() { _ = sim.Close() })
	sim.CreateBucket(bucket)
	store, err := ossstore.New(ossstore.Config{Endpoint: url, Region: "cn-beijing", Bucket: bucket}, key)
	require.NoError(t, err)
	l := &ledger.Ledger{Store: store, Prefix: "hbr-autoinstall/ledger/", Account: "5555", Lease: time.Hour}
	d, err := l.Claim(context.Background(), ledger.Announcement{Region: "cn-beijing", Instance: instance, Job: "j-smoke", EventTime: time.Now()})
	require.NoError(t, err)
	_, err = l.Finish(context.Background(), d.Owner, ledger.Final{Outcome: "GONE", Code: "InstanceNotExists"})
	require.NoError(t, err)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	noMNS := "http://" + ln.Addr().String()
	require.NoError(t, ln.Close())

	s := filepath.Join(t.TempDir(), "s")
	require.NoError(t, os.WriteFile(s, []byte(fakeS), 0o755))
	getenv := func(k string) string {
		return map[string]string{"ALIBABA_CLOUD_ACCESS_KEY_ID": key.AccessKeyID, "ALIBABA_CLOUD_ACCESS_KEY_SECRET": key.AccessKeySecret}[k]
	}
	var stdout, stderr bytes.Buffer
	verdict, err := run(context.Background(), []string{"-s", s, "-region", "cn-beijing", "-poll", "10ms", "-timeout", "5s",
		"-account", "5555", "-instance", instance, "-oss-endpoint", url, "-mns-endpoint", noMNS},
		[]string{"PATH=" + os.Getenv("PATH")}, getenv, &stdout, &stderr)
	require.NoError(t, err, stderr.String())
	assert.Equal(t, smoke.Pass, verdict, stdout.String())
	assert.Contains(t, stdout.String(), "ledger    bucket "+bucket+", prefix hbr-autoinstall/ledger/: private, not versioned, in the region")
	assert.Contains(t, stdout.String(), "ledger    "+instance+": generation 1 final GONE (InstanceNotExists), recorded by j-smoke")
	assert.Contains(t, stdout.String(), "queue     hbr-autoinstall-installs (install): depth unknown")
}
