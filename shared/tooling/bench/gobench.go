package bench

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
)

// GoBench is one line of `go test -bench -benchmem` output.
type GoBench struct {
	// Name is the benchmark name without the -GOMAXPROCS suffix.
	Name        string  `json:"name"`
	Iterations  int64   `json:"iterations"`
	NsPerOp     float64 `json:"ns_per_op"`
	BytesPerOp  int64   `json:"bytes_per_op"`
	AllocsPerOp int64   `json:"allocs_per_op"`
}

// RunGoBench runs the Go benchmarks of pkg (e.g. "./shared/handler") in
// moduleDir with -benchmem for benchtime each (e.g. "1s", "200x") and parses
// the results. It fails when the run fails or reports no benchmark.
func RunGoBench(ctx context.Context, moduleDir, pkg, benchtime string) ([]GoBench, error) {
	cmd := exec.CommandContext(ctx, "go", "test", "-run", "^$", "-bench", ".", "-benchmem", "-benchtime", benchtime, "-count", "1", pkg)
	cmd.Dir = moduleDir
	cmd.Env = os.Environ()
	out, err := cmd.CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("go test -bench %s: %w\n%s", pkg, err, out)
	}
	res := ParseGoBench(string(out))
	if len(res) == 0 {
		return nil, fmt.Errorf("go test -bench %s reported no benchmark:\n%s", pkg, out)
	}
	return res, nil
}

// ParseGoBench extracts the benchmark lines of `go test -bench -benchmem`
// output; other lines are skipped.
func ParseGoBench(out string) []GoBench {
	var res []GoBench
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") {
			continue
		}
		n, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil {
			continue
		}
		b := GoBench{Name: f[0], Iterations: n}
		if i := strings.LastIndexByte(b.Name, '-'); i > 0 {
			if _, err := strconv.Atoi(b.Name[i+1:]); err == nil {
				b.Name = b.Name[:i]
			}
		}
		for i := 2; i+1 < len(f); i += 2 {
			v, unit := f[i], f[i+1]
			switch unit {
			case "ns/op":
				b.NsPerOp, _ = strconv.ParseFloat(v, 64)
			case "B/op":
				b.BytesPerOp, _ = strconv.ParseInt(v, 10, 64)
			case "allocs/op":
				b.AllocsPerOp, _ = strconv.ParseInt(v, 10, 64)
			}
		}
		res = append(res, b)
	}
	return res
}
