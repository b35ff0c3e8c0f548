package deploycheck

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hbr-autoinstall/hbr-autoinstall/shared/config"
)

// cleanEnv is a minimal environment for make, so that variables of the
// calling shell (REGION, QUEUE_NAME, MAKEFLAGS, …) do not leak in.
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

// repoSpec is the repository's s.yaml rendered by s preview with vars as
// the only environment.
func repoSpec(t *testing.T, vars map[string]string) Spec {
	t.Helper()
	return preview(t, "s.yaml", vars)
}

// repoRules are the rules the repository's s.yaml must satisfy: the real
// Makefile, shared/config's variable list and fc3's schema.
func repoRules(t *testing.T) Rules {
	t.Helper()
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
	return Rules{
		Variables:     vars,
		BuildOutputs:  builds,
		Schema:        referenceSchema(t),
		ExtraTriggers: strings.Fields(runMake(t, "print-EXTRA_TRIGGERS")),
	}
}

// TestRepositorySpec checks the real s.yaml, as s preview renders it, with
// the defaults (every environment variable must then carry the code's
// default) and with the overrides the README documents.
func TestRepositorySpec(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name     string
		vars     map[string]string
		defaults bool
		check    func(t *testing.T, fn Function)
	}{
		{"defaults", nil, true, func(t *testing.T, fn Function) {
			assert.Equal(t, "cn-hangzhou", fn.Props["region"])
			assert.Equal(t, "auto", fn.Props["logConfig"])
		}},
		{"overrides", map[string]string{
			"REGION": "cn-shanghai", "QUEUE_NAME": "q1", "POLL_INTERVAL": "45s",
			"LOG_CONFIG": `{"project":"p","logstore":"l"}`,
		}, false, func(t *testing.T, fn Function) {
			assert.Equal(t, "cn-shanghai", fn.Props["region"])
			assert.Equal(t, map[string]any{"project": "p", "logstore": "l"}, fn.Props["logConfig"])
			assert.Equal(t, "45s", dig(fn.Props, "environmentVariables", "POLL_INTERVAL"))
			assert.Equal(t, "q1", dig(fn.Props, "environmentVariables", "QUEUE_NAME"))
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			spec := repoSpec(t, tc.vars)
			rules := repoRules(t)
			rules.ExpectDefaults = tc.defaults
			for _, p := range Check(spec, rules) {
				t.Errorf("s.yaml: %s", p)
			}
			require.NotEmpty(t, spec.Functions)
			for _, fn := range spec.Functions {
				tc.check(t, fn)
			}
		})
	}
}

// TestMakefileNamesMatchSpec checks that the names `make provision` creates
// are the ones s.yaml deploys against by default.
func TestMakefileNamesMatchSpec(t *testing.T) {
	t.Parallel()
	vars, ok := repoSpec(t, nil).Doc["vars"].(map[string]any)
	require.True(t, ok)
	cases := []struct{ makeVar, specVar string }{
		{"QUEUE_NAME", "queueName"},
		{"INSTALL_QUEUE_NAME", "installQueueName"},
		{"DLQ_NAME", "dlqName"},
		{"ROLE_NAME", "role"},
	}
	for _, tc := range cases {
		got := strings.TrimSpace(runMake(t, "print-"+tc.makeVar))
		assert.Equal(t, vars[tc.specVar], got, "Makefile %s vs s.yaml vars.%s", tc.makeVar, tc.specVar)
	}
	env, ok := vars["environment"].(map[string]any)
	require.True(t, ok)
	assert.Equal(t, env["LEDGER_PREFIX"], strings.TrimSpace(runMake(t, "print-LEDGER_PREFIX")), "Makefile LEDGER_PREFIX vs s.yaml's")
	regions := strings.Fields(runMake(t, "print-REGIONS"))
	require.NotEmpty(t, regions)
	assert.Equal(t, vars["region"], regions[0], "s.yaml's default region should be the Makefile's first")
}

// referenceSchema loads fc3's props schema from testdata (see
// testdata/README.md for its source).
func referenceSchema(t *testing.T) *Schema {
	t.Helper()
	schemaOnce.Do(func() { schema, schemaErr = LoadSchema("testdata/fc3-schema.json") })
	require.NoError(t, schemaErr)
	return schema
}

var (
	schemaOnce sync.Once
	schema     *Schema
	schemaErr  error
)

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
