package deploycheck

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// repoRoot is the module root, two levels above this package.
const repoRoot = "../../.."

// sEnvVar names the Serverless Devs CLI the tests run; by default the one
// `make tools` pins in .tools/ (make test installs it first).
const sEnvVar = "DEPLOYCHECK_S"

// sHome is a HOME of the tests' own for s, which writes ~/.s/config and
// ~/.s/logs; set by TestMain.
var sHome string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "deploycheck-s-home-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	sHome = dir
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// sBinary returns the Serverless Devs CLI to run. It fails, not skips, when
// there is none: the checks are only worth anything on s's own rendering.
func sBinary(t *testing.T) string {
	t.Helper()
	s := os.Getenv(sEnvVar)
	if s == "" {
		abs, err := filepath.Abs(filepath.Join(repoRoot, ".tools", "node_modules", ".bin", "s"))
		require.NoError(t, err)
		s = abs
	}
	if _, err := os.Stat(s); err != nil {
		t.Fatalf("Serverless Devs CLI %s not found: run `make tools` (needs npm), or set %s", s, sEnvVar)
	}
	return s
}

// previewEnv is a minimal environment for s, so that variables of the
// calling shell (REGION, QUEUE_NAME, …) do not leak into the rendering.
func previewEnv(vars map[string]string) []string {
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + sHome}
	keys := make([]string, 0, len(vars))
	for k := range vars {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		env = append(env, k+"="+vars[k])
	}
	return env
}

// previews caches `s preview` outputs (half a second each) by template and
// environment; each caller gets a fresh Spec to mutate.
var previews sync.Map // key string → *previewResult

type previewResult struct {
	once sync.Once
	doc  []byte
	err  error
}

// preview renders template (relative to the repository root) with s.
func preview(t *testing.T, template string, vars map[string]string) Spec {
	t.Helper()
	s := sBinary(t)
	env := previewEnv(vars)
	v, _ := previews.LoadOrStore(template+"\x00"+strings.Join(env, "\x00"), &previewResult{})
	r := v.(*previewResult)
	r.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		spec, err := Preview(ctx, s, repoRoot, template, env)
		if err != nil {
			r.err = err
			return
		}
		r.doc, r.err = json.Marshal(spec.Doc)
	})
	require.NoError(t, r.err)
	spec, err := ParsePreview(r.doc)
	require.NoError(t, err)
	return spec
}

func TestParsePreviewSkipsNonJSONLines(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, out string
		wantErr   string
	}{
		{"plain", `{"edition":"3.0.0","resources":{"b":{"component":"fc3","props":{"n":1}},"a":{"component":"fc3"}}}`, ""},
		{"warning first", "[2026-01-01 00:00:00][WARN][s_cli] It is not recommended to run the command as root user.\n" +
			`{"edition":"3.0.0","resources":{"b":{"component":"fc3","props":{"n":1}},"a":{"component":"fc3"}}}` + "\n", ""},
		{"warnings around, indented", "warn 1\nwarn {2}\n  {\"edition\":\"3.0.0\",\n\"resources\":{\"b\":{\"component\":\"fc3\",\"props\":{\"n\":1}},\"a\":{\"component\":\"fc3\"}}}\ntrailing note\n", ""},
		{"no document", "[WARN] nothing here\n", "no JSON document"},
		{"broken document", "{\"edition\":", "decode the preview output"},
		{"resource not a mapping", `{"resources":{"a":1}}`, "resources.a is not a mapping"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			spec, err := ParsePreview([]byte(tc.out))
			if tc.wantErr != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tc.wantErr)
				return
			}
			require.NoError(t, err)
			require.Len(t, spec.Functions, 2)
			assert.Equal(t, "a", spec.Functions[0].Resource)
			assert.Equal(t, "b", spec.Functions[1].Resource)
			assert.Equal(t, "1", fmt.Sprint(spec.Functions[1].Props["n"]))
			assert.Equal(t, "3.0.0", spec.Doc["edition"])
		})
	}
}

// TestPreviewRendersTheEnvironment shows that s itself renders the
// fixture: env() defaults, overrides from the environment, vars and nested
// vars, ${config('AccountID')} left as it is without credentials.
func TestPreviewRendersTheEnvironment(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name          string
		vars          map[string]string
		region, queue string
	}{
		{"defaults", nil, "cn-hangzhou", "jobs"},
		{"overrides", map[string]string{"REGION": "cn-shanghai", "QUEUE_NAME": "q1"}, "cn-shanghai", "q1"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			spec := preview(t, "shared/tooling/deploycheck/testdata/s.yaml", tc.vars)
			require.Len(t, spec.Functions, 2)
			for _, fn := range spec.Functions {
				assert.Equal(t, tc.region, fn.Props["region"], fn.Resource)
				env, _ := fn.Props["environmentVariables"].(map[string]any)
				assert.Equal(t, tc.queue, env["QUEUE_NAME"], fn.Resource)
			}
			install := spec.Functions[0].Props
			assert.Equal(t, "acs:mns:"+tc.region+":${config('AccountID')}:/queues/dead-letters/messages",
				dig(install, "asyncInvokeConfig", "destinationConfig", "onFailure", "destination"))
		})
	}
}

// dig follows keys through nested objects.
func dig(v any, keys ...string) any {
	for _, k := range keys {
		m, _ := v.(map[string]any)
		v = m[k]
	}
	return v
}
