package bench

import (
	"bytes"
	"flag"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func testText() FlagText {
	return FlagText{
		JSON: "json help", Quick: "quick help", Seed: "seed help", Coalesce: "coalesce help",
		MaxInstances: "max help", Timeout: "timeout help", CoalesceDefault: 30 * time.Second, TimeoutDefault: time.Minute,
		ScaleDefault: 10, MaxInstancesDefault: 64,
	}
}

func TestFlags(t *testing.T) {
	tests := []struct {
		name       string
		args       []string
		wantStatus int
		wantOK     bool
		want       Flags
		instances  int
	}{
		{name: "defaults", wantOK: true, instances: DefaultScenario().Instances,
			want: Flags{Seed: 1, Scale: 10, APILatency: DefaultAPILatency, Coalesce: 30 * time.Second, Batch: 50, BatchWindow: 5 * time.Second, MaxInstances: 64, Timeout: time.Minute}},
		{name: "quick", args: []string{"-quick", "-seed", "7", "-coalesce", "0"}, wantOK: true, instances: QuickScenario().Instances,
			want: Flags{Quick: true, Seed: 7, Scale: 10, APILatency: DefaultAPILatency, Batch: 50, BatchWindow: 5 * time.Second, MaxInstances: 64, Timeout: time.Minute}},
		{name: "instances override", args: []string{"-quick", "-instances", "40", "-json", "-out", "x.json"}, wantOK: true, instances: 40,
			want: Flags{JSON: true, Out: "x.json", Quick: true, Instances: 40, Seed: 1, Scale: 10, APILatency: DefaultAPILatency, Coalesce: 30 * time.Second, Batch: 50, BatchWindow: 5 * time.Second, MaxInstances: 64, Timeout: time.Minute}},
		{name: "local cloud", args: []string{"-api-latency", "250ms", "-scale", "5", "-max-instances", "8", "-stream-concurrency", "3", "-cpuprofile", "cpu.out"}, wantOK: true,
			instances: DefaultScenario().Instances,
			want: Flags{Seed: 1, Scale: 5, APILatency: 250 * time.Millisecond, Coalesce: 30 * time.Second, Batch: 50, BatchWindow: 5 * time.Second,
				MaxInstances: 8, StreamConcurrency: 3, Timeout: time.Minute, CPUProfile: "cpu.out"}},
		{name: "help", args: []string{"-h"}, wantStatus: 0},
		{name: "bad flag", args: []string{"-nope"}, wantStatus: 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fs := flag.NewFlagSet("test", flag.ContinueOnError)
			var out bytes.Buffer
			fs.SetOutput(&out)
			f := RegisterFlags(fs, testText())
			status, ok := Parse(fs, tc.args, "Usage: test\n")
			assert.Equal(t, tc.wantOK, ok)
			assert.Equal(t, tc.wantStatus, status)
			if !ok {
				assert.Contains(t, out.String(), "Usage: test\n")
				return
			}
			assert.Equal(t, tc.want, *f)
			assert.Equal(t, tc.instances, f.Scenario().Instances)
		})
	}
}

func TestFlagsHelpTexts(t *testing.T) {
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	RegisterFlags(fs, testText())
	for name, usage := range map[string]string{"json": "json help", "quick": "quick help", "seed": "seed help", "coalesce": "coalesce help", "max-instances": "max help", "timeout": "timeout help"} {
		require.NotNil(t, fs.Lookup(name), name)
		assert.Equal(t, usage, fs.Lookup(name).Usage, name)
	}
	assert.Equal(t, "30s", fs.Lookup("coalesce").DefValue)
	assert.Equal(t, "1m0s", fs.Lookup("timeout").DefValue)
	assert.Equal(t, "100ms", fs.Lookup("api-latency").DefValue)
	assert.Equal(t, "10", fs.Lookup("scale").DefValue)
	assert.Equal(t, "64", fs.Lookup("max-instances").DefValue)
}

type table struct{ N int }

func (table) PrintTable(w io.Writer) { io.WriteString(w, "TABLE\n") }

func TestOutput(t *testing.T) {
	file := filepath.Join(t.TempDir(), "doc.json")
	tests := []struct {
		name   string
		flags  Flags
		stdout string
	}{
		{name: "table", flags: Flags{}, stdout: "TABLE\n"},
		{name: "json and file", flags: Flags{JSON: true, Out: file}, stdout: "{\n  \"N\": 3\n}\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var w bytes.Buffer
			require.NoError(t, tc.flags.Output(&w, table{N: 3}))
			assert.Equal(t, tc.stdout, w.String())
			if tc.flags.Out != "" {
				b, err := os.ReadFile(tc.flags.Out)
				require.NoError(t, err)
				assert.Equal(t, "{\n  \"N\": 3\n}\n", string(b))
			}
		})
	}
	assert.Error(t, (&Flags{Out: filepath.Join(t.TempDir(), "missing", "doc.json")}).Output(io.Discard, table{}))
}

func TestCommandLine(t *testing.T) {
	assert.Equal(t, "make chaos", CommandLine("make chaos", nil))
	assert.Equal(t, "make bench ARGS='-quick -seed 2'", CommandLine("make bench", []string{"-quick", "-seed", "2"}))
}
