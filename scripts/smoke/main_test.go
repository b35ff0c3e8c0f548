package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

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
}

func TestRunRejectsArguments(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	_, err := run(context.Background(), []string{"extra"}, nil, func(string) string { return "" }, &out, &out)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "unexpected arguments")
}
