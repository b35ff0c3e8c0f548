package bench

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/hbr-autoinstall/hbr-autoinstall/shared/localcloud"
)

// Minimal is the name of the reference binary: a bare fc.Start handler
// (scripts/bench/minimal) that every function is compared with.
const Minimal = "minimal"

// MinimalPackage is the import path, relative to the module root, of the
// minimal binary's source.
const MinimalPackage = "./scripts/bench/minimal"

// SDKBaseline is the name of the second reference binary: a bare fc.Start
// handler that links the same three SDKs as the functions
// (scripts/bench/sdkbaseline), so that ratios to it measure only what the
// project's own code costs.
const SDKBaseline = "sdkbaseline"

// SDKBaselinePackage is the SDK baseline's source, relative to the module
// root.
const SDKBaselinePackage = "./scripts/bench/sdkbaseline"

// Build compiles every function (./functions/<name>) and the minimal binary
// with the flags `make build` uses, for the host's platform so they run here,
// into outDir/<name>/main, and returns the paths by name.
func Build(ctx context.Context, moduleDir, outDir string) (map[string]string, error) {
	pkgs := map[string]string{Minimal: MinimalPackage, SDKBaseline: SDKBaselinePackage}
	for _, fn := range localcloud.Functions {
		pkgs[fn] = "./functions/" + fn
	}
	out := map[string]string{}
	for name, pkg := range pkgs {
		bin := filepath.Join(outDir, name, "main")
		// The `make build` flags: trimmed paths, stripped, no build id.
		cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags=-s -w -buildid=", "-o", bin, pkg)
		cmd.Dir = moduleDir
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if b, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("build %s: %w\n%s", pkg, err, b)
		}
		out[name] = bin
	}
	return out, nil
}

// Sizes reports each binary's size in bytes.
func Sizes(bins map[string]string) (map[string]int64, error) {
	out := map[string]int64{}
	for name, path := range bins {
		st, err := os.Stat(path)
		if err != nil {
			return nil, fmt.Errorf("size of %s: %w", name, err)
		}
		out[name] = st.Size()
	}
	return out, nil
}
