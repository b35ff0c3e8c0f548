package deploycheck

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The tree says what ships: the function binaries link no emulator
// (shared/localcloud/...) and no tooling (shared/tooling/...), and at most
// three folders at the top of shared/ hold nothing a function links.
func TestFunctionsLinkNoEmulatorOrTooling(t *testing.T) {
	const module = "github.com/hbr-autoinstall/hbr-autoinstall"
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "list", "-deps", "./functions/...")
	cmd.Dir = repoRoot
	out, err := cmd.Output()
	require.NoError(t, err, "go list -deps ./functions/...")
	linked := map[string]bool{} // top-level folders of shared/ the functions link
	var ours []string
	for _, pkg := range strings.Fields(string(out)) {
		rel, ok := strings.CutPrefix(pkg, module+"/shared/")
		if !ok {
			continue
		}
		ours = append(ours, rel)
		assert.False(t, strings.HasPrefix(rel, "localcloud"), "a function binary links the emulator package %s", pkg)
		assert.False(t, strings.HasPrefix(rel, "tooling"), "a function binary links the tooling package %s", pkg)
		linked[strings.Split(rel, "/")[0]] = true
	}
	require.NotEmpty(t, ours, "the functions link the project's packages")

	entries, err := os.ReadDir(filepath.Join(repoRoot, "shared"))
	require.NoError(t, err)
	var unlinked []string
	for _, e := range entries {
		if e.IsDir() && !linked[e.Name()] {
			unlinked = append(unlinked, e.Name())
		}
	}
	assert.LessOrEqual(t, len(unlinked), 3, "folders of shared/ that ship nothing: %v", unlinked)
	assert.ElementsMatch(t, []string{"localcloud", "tooling"}, unlinked)
}
