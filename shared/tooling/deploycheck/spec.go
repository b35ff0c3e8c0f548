package deploycheck

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"sort"
	"strings"
)

// Spec is an s.yaml as Serverless Devs renders it (`s preview -o json`).
type Spec struct {
	// Doc is the whole rendered document.
	Doc map[string]any
	// Functions are the fc3 resources, sorted by resource name.
	Functions []Function
}

// Function is one resource of the spec.
type Function struct {
	// Resource is the resource's key under resources (what `s <resource>
	// deploy` takes).
	Resource string
	// Component is the resource's component (fc3).
	Component string
	// Props are the rendered props.
	Props map[string]any
	// Actions are the rendered actions (pre-deploy, …).
	Actions map[string]any
}

// Preview runs `<s> preview -t <template> -o json` in dir with exactly the
// environment env (s reads the variables the template's ${env(…)} names,
// and writes its config and logs under $HOME/.s, so env should carry a
// HOME the caller owns), and parses what it prints. It needs no
// credentials and no network: ${config('AccountID')} stays unrendered
// without an access alias.
func Preview(ctx context.Context, s, dir, template string, env []string) (Spec, error) {
	cmd := exec.CommandContext(ctx, s, "preview", "-t", template, "-o", "json")
	cmd.Dir = dir
	cmd.Env = env
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return Spec{}, fmt.Errorf("%s preview -t %s: %w: %s%s", s, template, err, stderr.Bytes(), out)
	}
	return ParsePreview(out)
}

// ParsePreview parses the output of `s preview -o json`. Lines before the
// document that are not JSON (s prints warnings such as "not recommended to
// run the command as root user" on stdout) are skipped, as is anything
// after it.
func ParsePreview(out []byte) (Spec, error) {
	rest := out
	for len(rest) > 0 {
		line, next, _ := bytes.Cut(rest, []byte("\n"))
		if bytes.HasPrefix(bytes.TrimSpace(line), []byte("{")) {
			break
		}
		rest = next
	}
	if len(bytes.TrimSpace(rest)) == 0 {
		return Spec{}, fmt.Errorf("no JSON document in the preview output: %q", truncate(string(out), 300))
	}
	dec := json.NewDecoder(bytes.NewReader(rest))
	dec.UseNumber()
	var doc map[string]any
	if err := dec.Decode(&doc); err != nil {
		return Spec{}, fmt.Errorf("decode the preview output: %w", err)
	}
	return NewSpec(doc)
}

// NewSpec builds a Spec from a rendered document.
func NewSpec(doc map[string]any) (Spec, error) {
	if doc == nil {
		return Spec{}, errors.New("empty document")
	}
	spec := Spec{Doc: doc}
	resources, _ := doc["resources"].(map[string]any)
	names := make([]string, 0, len(resources))
	for name := range resources {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		res, ok := resources[name].(map[string]any)
		if !ok {
			return Spec{}, fmt.Errorf("resources.%s is not a mapping", name)
		}
		fn := Function{Resource: name}
		fn.Component, _ = res["component"].(string)
		fn.Props, _ = res["props"].(map[string]any)
		fn.Actions, _ = res["actions"].(map[string]any)
		spec.Functions = append(spec.Functions, fn)
	}
	return spec, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "") + "…"
}
