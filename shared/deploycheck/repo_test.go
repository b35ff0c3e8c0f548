package deploycheck

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hbr-autoinstall/hbr-autoinstall/shared/config"
)

// repoRoot is the module root, two levels above this package.
const repoRoot = "../.."

// cleanEnv is a minimal environment for make and s, so that variables of
// the calling shell (REGION, QUEUE_NAME, MAKEFLAGS, …) do not leak in.
func cleanEnv() []string {
	env := []string{"PATH=" + os.Getenv("PATH")}
	if home := os.Getenv("HOME"); home != "" {
		env = append(env, "HOME="+home)
	}
	return env
}

// runMake runs make in the repository root and returns its stdout.
func runMake(t *testing.T, args ...string) string {
	t.Helper()
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("make is not installed")
	}
	cmd := exec.Command("make", append([]string{"-s"}, args...)...)
	cmd.Dir = repoRoot
	cmd.Env = cleanEnv()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	require.NoError(t, err, "make %v: %s", args, stderr.String())
	return string(out)
}

func repoSpec(t *testing.T) Spec {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(repoRoot, "s.yaml"))
	require.NoError(t, err)
	spec, err := Parse(data, MapEnv(nil))
	require.NoError(t, err)
	return spec
}

// TestRepositorySpec checks the real s.yaml against the real Makefile,
// shared/config's variable list and fc3's schema.
func TestRepositorySpec(t *testing.T) {
	t.Parallel()
	spec := repoSpec(t)

	builds := ParseBuildCommands(runMake(t, "-n", "build"))
	require.NotEmpty(t, builds, "make -n build printed no go build command")
	for bin, pkg := range builds {
		info, err := os.Stat(filepath.Join(repoRoot, pkg))
		if assert.NoError(t, err, "%s is built from %s", bin, pkg) {
			assert.True(t, info.IsDir(), pkg)
		}
	}

	var vars []Variable
	for _, v := range config.Variables() {
		vars = append(vars, Variable{Name: v.Name, Default: v.Default, Required: v.Required, Platform: v.Platform})
	}
	schema := referenceSchema(t)

	problems := Check(spec, Rules{
		Variables:      vars,
		BuildOutputs:   builds,
		Schema:         schema,
		ExtraTriggers:  strings.Fields(runMake(t, "print-EXTRA_TRIGGERS")),
		ExpectDefaults: true,
	})
	for _, p := range problems {
		t.Errorf("s.yaml: %s", p)
	}
}

// TestMakefileNamesMatchSpec checks that the names `make provision` creates
// are the ones s.yaml deploys against by default.
func TestMakefileNamesMatchSpec(t *testing.T) {
	t.Parallel()
	vars, ok := repoSpec(t).Doc["vars"].(map[string]any)
	require.True(t, ok)
	cases := []struct{ makeVar, specVar string }{
		{"QUEUE_NAME", "queueName"},
		{"DLQ_NAME", "dlqName"},
		{"ROLE_NAME", "role"},
	}
	for _, tc := range cases {
		got := strings.TrimSpace(runMake(t, "print-"+tc.makeVar))
		assert.Equal(t, vars[tc.specVar], got, "Makefile %s vs s.yaml vars.%s", tc.makeVar, tc.specVar)
	}
	regions := strings.Fields(runMake(t, "print-REGIONS"))
	require.NotEmpty(t, regions)
	assert.Equal(t, vars["region"], regions[0], "s.yaml's default region should be the Makefile's first")
}

// referenceSchema loads the fc3 schema from the reference material beside
// the repository (CI has it too). Without it the schema part of the checks is
// skipped, loudly; the project's own rules are still checked.
func referenceSchema(t *testing.T) *Schema {
	t.Helper()
	path := filepath.Join(repoRoot, ReferenceSchemaPath)
	if _, err := os.Stat(path); os.IsNotExist(err) {
		t.Logf("no %s: s.yaml is not validated against the fc3 schema", path)
		return nil
	}
	schema, err := LoadSchema(path)
	require.NoError(t, err)
	return schema
}

// TestRenderMatchesServerlessDevs compares Parse's rendering of s.yaml with
// `s preview`, when Serverless Devs is installed (it is not in CI).
func TestRenderMatchesServerlessDevs(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("s"); err != nil {
		t.Skip("Serverless Devs (s) is not installed")
	}
	envs := []map[string]string{
		nil,
		{"REGION": "cn-shanghai", "QUEUE_NAME": "q1", "LOG_CONFIG": `{"project":"p","logstore":"l"}`, "POLL_INTERVAL": "45s"},
	}
	for _, env := range envs {
		cmd := exec.Command("s", "preview", "-o", "json")
		cmd.Dir = repoRoot
		cmd.Env = cleanEnv()
		for k, v := range env {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
		out, err := cmd.Output()
		require.NoError(t, err)
		start := bytes.IndexByte(out, '{')
		require.GreaterOrEqual(t, start, 0, "no JSON in s preview output: %s", out)
		var want any
		require.NoError(t, json.Unmarshal(out[start:], &want))

		data, err := os.ReadFile(filepath.Join(repoRoot, "s.yaml"))
		require.NoError(t, err)
		spec, err := Parse(data, MapEnv(env))
		require.NoError(t, err)
		raw, err := json.Marshal(spec.Doc)
		require.NoError(t, err)
		var got any
		require.NoError(t, json.Unmarshal(raw, &got))
		assert.Equal(t, want, got, "env %v", env)
	}
}

// TestReadmeListsEveryVariable keeps the README's configuration table in step
// with shared/config.
func TestReadmeListsEveryVariable(t *testing.T) {
	t.Parallel()
	readme, err := os.ReadFile(filepath.Join(repoRoot, "README.md"))
	require.NoError(t, err)
	defaults := map[string]string{} // variable → the table's default column
	for _, line := range strings.Split(string(readme), "\n") {
		cols := strings.Split(line, "|")
		if !strings.HasPrefix(line, "| `") || len(cols) < 4 {
			continue
		}
		for _, name := range strings.Split(cols[1], ",") {
			defaults[strings.Trim(strings.TrimSpace(name), "`")] = strings.TrimSpace(cols[2])
		}
	}
	for _, v := range config.Variables() {
		got, ok := defaults[v.Name]
		if assert.True(t, ok, "README.md's configuration table has no row for %s", v.Name) && v.Default != "" {
			assert.Equal(t, "`"+v.Default+"`", got, "README.md's default for %s", v.Name)
		}
	}
}
