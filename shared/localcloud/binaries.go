package localcloud

import (
	"os"
	"path/filepath"
)

// Binaries finds the function binaries a command runs: prebuilt ones under
// dir (dir/<fn>/main for each of [Functions]) when dir is set, or else those
// build compiles into a fresh temporary directory named after pattern (as
// for os.MkdirTemp). The caller calls cleanup, which removes that directory,
// once done with the binaries; it is never nil.
func Binaries(dir, pattern string, build func(outDir string) (map[string]string, error)) (bins map[string]string, cleanup func(), err error) {
	if dir != "" {
		bins = map[string]string{}
		for _, fn := range Functions {
			bins[fn] = filepath.Join(dir, fn, "main")
		}
		return bins, func() {}, nil
	}
	tmp, err := os.MkdirTemp("", pattern)
	if err != nil {
		return nil, func() {}, err
	}
	cleanup = func() { os.RemoveAll(tmp) }
	if bins, err = build(tmp); err != nil {
		cleanup()
		return nil, func() {}, err
	}
	return bins, cleanup, nil
}
