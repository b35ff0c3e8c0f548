package localcloud

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Functions are the function names this project builds, each from
// ./functions/<name>: install (EventBridge ECS events), poller (the job
// queue's event stream) and reconcile (timer trigger and manual invokes).
var Functions = []string{"install", "poller", "reconcile"}

// BuildFunctions compiles every function of the module rooted at moduleDir
// into outDir/<name>/main, the way `make build` does for a deployment but for
// the host's own platform, and returns the binary paths by name.
func BuildFunctions(ctx context.Context, moduleDir, outDir string) (map[string]string, error) {
	out := map[string]string{}
	for _, fn := range Functions {
		bin := filepath.Join(outDir, fn, "main")
		cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", bin, "./functions/"+fn)
		cmd.Dir = moduleDir
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if b, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("build %s: %v\n%s", fn, err, b)
		}
		out[fn] = bin
	}
	return out, nil
}

// ModuleRoot finds the directory holding go.mod, starting at dir and going up.
func ModuleRoot(dir string) (string, error) {
	d, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	for {
		if b, err := os.ReadFile(filepath.Join(d, "go.mod")); err == nil && strings.Contains(string(b), "module ") {
			return d, nil
		}
		parent := filepath.Dir(d)
		if parent == d {
			return "", fmt.Errorf("no go.mod above %s", dir)
		}
		d = parent
	}
}
