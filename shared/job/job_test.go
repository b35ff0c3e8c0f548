package job

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hbr-autoinstall/hbr-autoinstall/shared/fault"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/ident"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/ident/identtest"
)

var t0 = time.Date(2026, 11, 27, 5, 4, 45, 0, time.UTC)

func sample(n int) Message {
	m := Message{
		Version: Version, Kind: KindPoll, Region: "cn-hangzhou", TaskID: "t-abc123",
		TaskStartedAt: t0, Deadline: t0.Add(17 * time.Minute), OriginEventID: "ev-1", SentAt: t0,
	}
	for i := 0; i < n; i++ {
		id := fmt.Sprintf("i-bp1%017d", i)
		m.Instances = append(m.Instances, Instance{ID: id, JobID: JobID("acs.ecs", "ev-1", id), OriginEventID: "ev-1",
			FirstSeen: t0, ReadyBy: t0.Add(10 * time.Minute), Attempts: 1, Generation: 1, LeaseUntil: t0.Add(32 * time.Minute)})
	}
	return m
}

func TestRoundTrip(t *testing.T) {
	m := sample(3)
	b, err := Encode(m)
	require.NoError(t, err)
	for name, body := range map[string][]byte{
		"plain":  b,
		"base64": []byte(base64.StdEncoding.EncodeToString(b)),
		"spaced": []byte("  " + string(b) + "\n"),
	} {
		t.Run(name, func(t *testing.T) {
			got, err := Decode(body)
			require.NoError(t, err)
			assert.Equal(t, m.TaskID, got.TaskID)
			assert.Equal(t, m.IDs(), got.IDs())
			assert.True(t, m.Deadline.Equal(got.Deadline))
			assert.Equal(t, m.Instances[0].JobID, got.Instances[0].JobID)
		})
	}
}

func TestWorstCaseFitsMNSLimit(t *testing.T) {
	m := sample(MaxInstances)
	m.Kind = KindBind
	m.TaskID = ""
	m.OriginEventID = strings.Repeat("e", MaxOriginLen)
	m.LastError = strings.Repeat("x", 128)
	for i := range m.Instances {
		m.Instances[i].ID = "i-" + strings.Repeat("a", 58) + fmt.Sprintf("%02d", i)
		m.Instances[i].OriginEventID = strings.Repeat("o", MaxOriginLen)
		m.Instances[i].LastCode = strings.Repeat("c", 128)
		m.Instances[i].Attempts = 1 << 30
		m.Instances[i].NotReady = 1 << 30
		m.Instances[i].Generation = MaxGeneration
		m.Instances[i].Supersedes = strings.Repeat("j", 190) + "/TIMEOUT"
		m.Instances[i].Trigger = strings.Repeat("t", 64)
		m.Instances[i].Installed = "ALREADY_INSTALLED"
		m.Instances[i].Reason = strings.Repeat("r", MaxReasonLen)
		m.Instances[i].Detail = strings.Repeat("d", MaxDetailLen)
		m.Instances[i].ClientID = "c-" + strings.Repeat("c", 60)
		m.Instances[i].TaskID = "t-" + strings.Repeat("t", 60)
	}
	b, err := Encode(m)
	require.NoError(t, err)
	assert.Less(t, base64.StdEncoding.EncodedLen(len(b)), MaxEncodedBytes*9/10, "a full message stays below the 64 KB MNS limit, with room")
}

func TestDecodeRejects(t *testing.T) {
	good, err := Encode(sample(1))
	require.NoError(t, err)
	mutate := func(f func(*Message)) string {
		m := sample(1)
		f(&m)
		b, err := json.Marshal(m)
		require.NoError(t, err)
		return string(b)
	}
	tests := map[string]string{
		"empty":           "",
		"not json":        "hello world",
		"base64 of text":  base64.StdEncoding.EncodeToString([]byte("hello")),
		"array":           "[1,2]",
		"truncated":       string(good[:len(good)/2]),
		"oversize":        `{"x":"` + strings.Repeat("a", MaxEncodedBytes) + `"}`,
		"future version":  mutate(func(m *Message) { m.Version = ReaderVersion + 1 }),
		"version 0":       mutate(func(m *Message) { m.Version = 0 }),
		"hostile hops":    mutate(func(m *Message) { m.Hops = -1 }),
		"sweep on poll":   mutate(func(m *Message) { m.Sweep = &Sweep{ID: "s"} }),
		"unknown kind":    mutate(func(m *Message) { m.Kind = "explode" }),
		"no instances":    mutate(func(m *Message) { m.Instances = nil }),
		"too many":        mutate(func(m *Message) { m.Instances = sample(MaxInstances + 1).Instances }),
		"hostile id":      mutate(func(m *Message) { m.Instances[0].ID = "i-../../x" }),
		"no job id":       mutate(func(m *Message) { m.Instances[0].JobID = "" }),
		"no task":         mutate(func(m *Message) { m.TaskID = "" }),
		"bad region":      mutate(func(m *Message) { m.Region = "CN HANGZHOU" }),
		"no deadline":     mutate(func(m *Message) { m.Deadline = time.Time{} }),
		"negative":        mutate(func(m *Message) { m.PollCount = -1 }),
		"duplicate entry": mutate(func(m *Message) { m.Instances = append(m.Instances, m.Instances[0]) }),
		"unclaimed poll":  mutate(func(m *Message) { m.Instances[0].Generation = 0 }),
		"generation":      mutate(func(m *Message) { m.Instances[0].Generation = MaxGeneration + 1 }),
		"supersedes":      mutate(func(m *Message) { m.Instances[0].Supersedes = "j-1/<script>" }),
		"long reason":     mutate(func(m *Message) { m.Instances[0].Reason = strings.Repeat("r", MaxReasonLen+1) }),
		"retry with task": mutate(func(m *Message) { m.Kind = KindInstallRetry }),
	}
	for name, body := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := Decode([]byte(body))
			require.Error(t, err)
			assert.True(t, fault.Is(err, fault.Invalid), "%v", err)
		})
	}
}

func TestClip(t *testing.T) {
	assert.Equal(t, "short", Clip("short", 10))
	got := Clip(strings.Repeat("é", 10), 9)
	assert.LessOrEqual(t, len(got), 9)
	assert.True(t, strings.HasSuffix(got, "…"))
	assert.True(t, utf8.ValidString(got))
}

// TestIDChecksMatchRegexps pins the id checks to the regexps they replaced.
func TestIDChecksMatchRegexps(t *testing.T) {
	identtest.Run(t, []identtest.Case{
		{
			Name: "instance id", Pattern: `^i-[A-Za-z0-9]{1,62}$`, Valid: ValidInstanceID,
			Accept: []string{"i-bp1abc", "i-1", "i-" + strings.Repeat("Z", 62)},
			Reject: []string{"", "i-", "i", "I-abc", "-abc", "i-abc\n", "i-ab_c", "i-ab-c", "i-abç", "i-" + strings.Repeat("Z", 63)},
		},
		{
			Name: "region", Pattern: `^[a-z0-9-]{1,64}$`, Valid: ValidRegion,
			Accept: []string{"cn-hangzhou", strings.Repeat("a", 64)},
			Reject: []string{"", "CN-hangzhou", "cn-hangzhou\n", "cn-hängzhou", strings.Repeat("a", 65)},
		},
		{
			Name: "task id", Pattern: `^[A-Za-z0-9_.:-]{1,128}$`, Valid: ident.CloudID.Valid,
			Accept: []string{"t-abc123", "_", strings.Repeat("t", 128)},
			Reject: []string{"", "t abc", "t-abc\n", "t-äbc", strings.Repeat("t", 129)},
		},
		{
			Name: "job id", Pattern: `^[A-Za-z0-9_.:-]{1,64}$`, Valid: jobIDRule.Valid,
			Accept: []string{JobID("acs.ecs", "ev-1", "i-a"), ":", strings.Repeat("j", 64)},
			Reject: []string{"", "j/1", "j1\n", "jö", strings.Repeat("j", 65)},
		},
	})
}

func TestJobIDDeterministic(t *testing.T) {
	a := JobID("acs.ecs", "ev-1", "i-a")
	assert.Equal(t, a, JobID("acs.ecs", "ev-1", "i-a"))
	assert.NotEqual(t, a, JobID("acs.ecs", "ev-2", "i-a"))
	assert.NotEqual(t, a, JobID("acs.ecs", "ev-1", "i-b"))
	assert.NotEqual(t, JobID("a", "bc", "i-a"), JobID("ab", "c", "i-a"))
}

func TestChunk(t *testing.T) {
	in := sample(45).Instances
	chunks := Chunk(in, 20)
	require.Len(t, chunks, 3)
	assert.Len(t, chunks[0], 20)
	assert.Len(t, chunks[2], 5)
	assert.Empty(t, Chunk(nil, 20))
}

func FuzzDecode(f *testing.F) {
	b, err := Encode(sample(2))
	require.NoError(f, err)
	f.Add(b)
	f.Add([]byte(base64.StdEncoding.EncodeToString(b)))
	f.Add([]byte(`{"version":1}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		m, err := Decode(body)
		if err != nil {
			assert.True(t, fault.Is(err, fault.Invalid))
			return
		}
		// Whatever decodes must encode again within the limit.
		_, err = Encode(m)
		assert.NoError(t, err)
	})
}
