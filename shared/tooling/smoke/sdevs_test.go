package smoke

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fakeCLI records the command and answers with canned output.
type fakeCLI struct {
	stdout, stderr string
	err            error
	dir            string
	env            []string
	name           string
	args           []string
}

func (f *fakeCLI) exec(_ context.Context, dir string, env []string, name string, args ...string) ([]byte, []byte, error) {
	f.dir, f.env, f.name, f.args = dir, env, name, args
	return []byte(f.stdout), []byte(f.stderr), f.err
}

// invokeOutput is what fc3's invoke prints (colours included).
const invokeOutput = "[2026-01-01 00:00:00][WARN][s_cli] It is not recommended to run the command as root user.\n" +
	"\x1b[33m========= FC invoke Logs begin =========\x1b[39m\n" +
	`{"time":"2026-01-01T00:00:00Z","level":"INFO","msg":"accepted","instanceId":"i-smokex"}` + "\n" +
	"\x1b[33m========= FC invoke Logs end =========\x1b[39m\n\n" +
	"\x1b[1mInvoke instanceId:\x1b[22m \x1b[32mc-6760\x1b[39m\n" +
	"\x1b[1mRequestId:\x1b[22m \x1b[32m1-6760\x1b[39m\n\n" +
	"\x1b[1mInvoke Result:\x1b[22m\n\x1b[32m{\"events\":1,\"accepted\":1,\"outcomes\":{\"GONE\":1}}\x1b[39m\n"

func TestServerlessDevsInvoke(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		cli        fakeCLI
		wantAnswer string
		wantIs     error
		wantErr    string
	}{
		{"answer", fakeCLI{stdout: invokeOutput}, `{"events":1,"accepted":1,"outcomes":{"GONE":1}}`, nil, ""},
		{"function error", fakeCLI{stdout: "\x1b[1mError Type:\x1b[22m \x1b[31mUnhandledInvocationError\x1b[39m\n\n\x1b[1mInvoke Result:\x1b[22m\n\x1b[31m{\"errorMessage\":\"hbr: Forbidden.RAM\"}\x1b[39m\n"},
			"", nil, `UnhandledInvocationError: {"errorMessage":"hbr: Forbidden.RAM"}`},
		{"function not found", fakeCLI{err: errors.New("exit status 1"), stderr: "Error: FunctionNotFound: function 'hbr-autoinstall-install' does not exist"},
			"", ErrFunctionMissing, "s install invoke: exit status 1"},
		{"denied", fakeCLI{err: errors.New("exit status 1"), stderr: "AccessDenied: the caller is not authorized to perform fc:InvokeFunction"},
			"", ErrInvocationDenied, "AccessDenied"},
		{"bad keys", fakeCLI{err: errors.New("exit status 1"), stderr: "InvalidAccessKeyId.NotFound"},
			"", ErrInvocationDenied, ""},
		{"no credentials", fakeCLI{err: errors.New("exit status 1"), stdout: "Error Message:\n >> 1| acs:mns:${vars.region}:${config('AccountID')}:/queues\nRuntimeError: config('AccountID') not found"},
			"", ErrInvocationDenied, "not found"},
		{"other failure", fakeCLI{err: errors.New("exit status 1"), stderr: "getaddrinfo ENOTFOUND"},
			"", nil, "ENOTFOUND"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cli := tt.cli
			s := &ServerlessDevs{S: "s", Dir: "/repo", Env: []string{"REGION=cn-shanghai"}, Args: []string{"-a", "prod"}, Exec: cli.exec}
			answer, err := s.Invoke(context.Background(), "install", []byte(`{"id":"e"}`))
			assert.Equal(t, []string{"install", "invoke", "-e", `{"id":"e"}`, "-t", "s.yaml", "-a", "prod"}, cli.args)
			assert.Equal(t, "/repo", cli.dir)
			assert.Equal(t, []string{"REGION=cn-shanghai"}, cli.env)
			if tt.wantErr == "" && tt.wantIs == nil {
				require.NoError(t, err)
				assert.Equal(t, tt.wantAnswer, string(answer))
				return
			}
			require.Error(t, err)
			if tt.wantIs != nil {
				assert.ErrorIs(t, err, tt.wantIs)
			} else {
				assert.NotErrorIs(t, err, ErrFunctionMissing)
				assert.NotErrorIs(t, err, ErrInvocationDenied)
			}
			assert.Contains(t, err.Error(), tt.wantErr)
		})
	}
}

func TestServerlessDevsLogs(t *testing.T) {
	t.Parallel()
	now := time.Date(2030, 5, 6, 7, 8, 9, 0, time.UTC) // the test's own clock
	record := `{"time":"2030-05-06T07:08:00Z","level":"INFO","msg":"outcome","instanceId":"i-smokex","outcome":"GONE"}`
	cli := fakeCLI{stdout: "\n\x1b[36mc-6760\x1b[0m \x1b[2m2030-05-06 7:08:00\x1b[0m " + record + "\n"}
	s := &ServerlessDevs{S: "s", Template: "other.yaml", Exec: cli.exec, Now: func() time.Time { return now }}
	lines, err := s.Logs(context.Background(), "poller", now.Add(-2*time.Minute), "i-smokex")
	require.NoError(t, err)
	assert.Equal(t, []string{"poller", "logs", "-s", "2030-05-06T07:06:09Z", "-e", "2030-05-06T07:09:09Z", "--search", "i-smokex", "-t", "other.yaml"}, cli.args)
	rec, ok := FindRecord(lines, "i-smokex")
	require.True(t, ok)
	assert.Equal(t, "GONE", rec.Outcome)
}

func TestServerlessDevsQueueDepthNeedsAReader(t *testing.T) {
	t.Parallel()
	_, err := (&ServerlessDevs{}).QueueDepth(context.Background(), "jobs")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "ALIBABA_CLOUD_ACCESS_KEY_ID")
}
