package ecsevent

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hbr-autoinstall/hbr-autoinstall/shared/fault"
)

func readEvent(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "events", name))
	require.NoError(t, err)
	return b
}

func TestParseSampleEvents(t *testing.T) {
	tests := []struct {
		file       string
		wantIDs    []string
		wantReady  bool
		wantIgnore int
		wantReject int
		trigger    Trigger
	}{
		{file: "instance-running.json", wantIDs: []string{"i-bp1demo0000000000001"}, wantReady: true, trigger: TriggerRunning},
		{file: "instance-running-nested.json", wantIDs: []string{"i-bp1demo0000000000002"}, wantReady: true, trigger: TriggerRunning},
		{file: "cloudassistant-first-heartbeat.json", wantIDs: []string{"i-bp1demo0000000000003"}, wantReady: true, trigger: TriggerHeartbeat},
		{file: "instance-stopped.json", wantIgnore: 1},
		{file: "batch-array.json", wantIDs: []string{"i-bp1demo0000000000001", "i-bp1demo0000000000003"}, wantReady: true, trigger: TriggerRunning},
		{file: "invalid-instance-id.json", wantReject: 1},
		// No instance in data or subject: ignored, not rejected, so the
		// invocation does not fail into retries and the dead-letter queue.
		{file: "cloudassistant-first-heartbeat-no-instance.json", wantIgnore: 1},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			b, err := Parse(readEvent(t, tt.file), "cn-beijing")
			require.NoError(t, err)
			var ids []string
			for _, c := range b.Candidates {
				ids = append(ids, c.InstanceID)
				assert.Equal(t, "cn-hangzhou", c.Region)
				assert.Equal(t, tt.wantReady, c.Ready)
				assert.NotEmpty(t, c.EventID)
			}
			assert.Equal(t, tt.wantIDs, ids)
			assert.Len(t, b.Ignored, tt.wantIgnore)
			assert.Len(t, b.Rejected, tt.wantReject)
			if tt.trigger != "" {
				assert.Equal(t, tt.trigger, b.Candidates[0].Trigger)
			}
		})
	}
}

func TestFirstHeartbeatWithoutInstance(t *testing.T) {
	tests := []struct {
		name        string
		data        string
		subject     string
		wantIgnored bool
		wantReject  bool
		wantID      string
	}{
		{"no data", ``, "", true, false, ""},
		{"data not an object", `"up"`, "", true, false, ""},
		{"empty object", `{}`, "", true, false, ""},
		{"subject not an instance", `{"regionId":"cn-hangzhou"}`, "acs:ecs:cn-hangzhou:1:cloudassistant", true, false, ""},
		{"id from the subject", `{}`, "acs:ecs:cn-hangzhou:1:instance/i-bp1fromsubject01", false, false, "i-bp1fromsubject01"},
		{"id from data.resourceId", `{"resourceId":"i-bp1fromresource1"}`, "", false, false, "i-bp1fromresource1"},
		{"a malformed id is still rejected", `{"instanceId":"i-../../x"}`, "", false, true, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ev := `{"id":"hb-1","source":"acs.ecs","type":"ecs:CloudAssistant:FirstHeartbeat","aliyunregionid":"cn-hangzhou"`
			if tc.subject != "" {
				ev += `,"subject":"` + tc.subject + `"`
			}
			if tc.data != "" {
				ev += `,"data":` + tc.data
			}
			b, err := Parse([]byte(ev+"}"), "cn-hangzhou")
			require.NoError(t, err)
			if tc.wantIgnored {
				require.Len(t, b.Ignored, 1)
				assert.True(t, b.Ignored[0].Routine, "logged at debug")
				assert.Empty(t, b.Rejected)
				assert.Empty(t, b.Candidates)
				return
			}
			if tc.wantReject {
				assert.Len(t, b.Rejected, 1)
				return
			}
			require.Len(t, b.Candidates, 1)
			assert.Equal(t, tc.wantID, b.Candidates[0].InstanceID)
		})
	}
}

func TestParseRunInstances(t *testing.T) {
	b, err := Parse(readEvent(t, "runinstances-burst.json"), "cn-beijing")
	require.NoError(t, err)
	require.Len(t, b.Candidates, 25)
	for _, c := range b.Candidates {
		assert.False(t, c.Ready, "RunInstances instances are not running yet")
		assert.Equal(t, TriggerRunInstances, c.Trigger)
		assert.Equal(t, "cn-hangzhou", c.Region)
	}
}

func TestParseShapes(t *testing.T) {
	running := `{"id":"e1","source":"acs.ecs","type":"ecs:Instance:StateChange","data":{"resourceId":"i-abc","state":"Running"}}`
	tests := []struct {
		name       string
		payload    string
		wantIDs    []string
		wantRegion string
		wantIgnore int
		wantReject int
		wantErr    bool
	}{
		{name: "object, default region", payload: running, wantIDs: []string{"i-abc"}, wantRegion: "cn-beijing"},
		{name: "array of strings", payload: `[` + quote(running) + `]`, wantIDs: []string{"i-abc"}, wantRegion: "cn-beijing"},
		{name: "region from ARN", payload: `{"id":"e2","type":"ecs:Instance:StateChange","data":{"resourceId":"acs:ecs:cn-shanghai:123:instance/i-xyz","state":"Running"}}`, wantIDs: []string{"i-xyz"}, wantRegion: "cn-shanghai"},
		{name: "instance id from subject", payload: `{"id":"e3","type":"ecs:CloudAssistant:FirstHeartbeat","subject":"acs:ecs:cn-hangzhou:123:instance/i-sub","data":{}}`, wantIDs: []string{"i-sub"}, wantRegion: "cn-hangzhou"},
		{name: "lowercase running", payload: `{"id":"e4","type":"ecs:Instance:StateChange","data":{"content":{"resourceId":"i-low","state":"running"}}}`, wantIDs: []string{"i-low"}, wantRegion: "cn-beijing"},
		{name: "duplicate event in array", payload: `[` + running + `,` + running + `]`, wantIDs: []string{"i-abc"}, wantRegion: "cn-beijing", wantIgnore: 1},
		{name: "other type ignored", payload: `{"id":"e5","type":"ecs:Disk:Attach","data":{}}`, wantIgnore: 1},
		{name: "other api call ignored", payload: `{"id":"e6","type":"ecs:ActionTrail:ApiCall","data":{"eventName":"StopInstance"}}`, wantIgnore: 1},
		{name: "failed RunInstances ignored", payload: `{"id":"e7","type":"ecs:ActionTrail:ApiCall","data":{"eventName":"RunInstances","errorCode":"QuotaExceeded"}}`, wantIgnore: 1},
		{name: "RunInstances from the console", payload: `{"id":"e11","type":"ecs:ActionTrail:ConsoleOperation","data":{"eventName":"RunInstances","referencedResources":{"ACS::ECS::Instance":["i-con"]}}}`, wantIDs: []string{"i-con"}, wantRegion: "cn-beijing"},
		{name: "RunInstances by Auto Scaling", payload: `{"id":"e12","type":"ecs:ActionTrail:AliyunServiceEvent","data":{"eventName":"RunInstances","responseElements":{"InstanceIdSets":{"InstanceIdSet":["i-ess1","i-ess2"]}}}}`, wantIDs: []string{"i-ess1", "i-ess2"}, wantRegion: "cn-beijing"},
		{name: "RunInstances ids in both places, once each", payload: `{"id":"e13","type":"ecs:ActionTrail:ApiCall","data":{"eventName":"RunInstances","referencedResources":{"ACS::ECS::Instance":["i-b1","i-b2"]},"responseElements":{"InstanceIdSets":{"InstanceIdSet":["i-b2","i-b3"]}}}}`, wantIDs: []string{"i-b1", "i-b2", "i-b3"}, wantRegion: "cn-beijing"},
		{name: "bad event next to good one", payload: `[` + running + `,{"type":"ecs:Instance:StateChange"},7]`, wantIDs: []string{"i-abc"}, wantRegion: "cn-beijing", wantReject: 2},
		{name: "no state", payload: `{"id":"e8","type":"ecs:Instance:StateChange","data":{"resourceId":"i-abc"}}`, wantReject: 1},
		{name: "hostile region", payload: `{"id":"e9","aliyunregionid":"../x","type":"ecs:Instance:StateChange","data":{"resourceId":"i-abc","state":"Running"}}`, wantReject: 1},
		{name: "too long id", payload: `{"id":"e10","type":"ecs:Instance:StateChange","data":{"resourceId":"i-` + strings.Repeat("a", 70) + `","state":"Running"}}`, wantReject: 1},
		{name: "not json", payload: `hello`, wantErr: true},
		{name: "truncated json", payload: `{"id":`, wantErr: true},
		{name: "empty array", payload: `[]`, wantErr: true},
		{name: "empty", payload: ` `, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := Parse([]byte(tt.payload), "cn-beijing")
			if tt.wantErr {
				require.Error(t, err)
				assert.True(t, fault.Is(err, fault.Invalid))
				return
			}
			require.NoError(t, err)
			var ids []string
			for _, c := range b.Candidates {
				ids = append(ids, c.InstanceID)
				assert.Equal(t, tt.wantRegion, c.Region)
			}
			assert.Equal(t, tt.wantIDs, ids)
			assert.Len(t, b.Ignored, tt.wantIgnore)
			assert.Len(t, b.Rejected, tt.wantReject)
			for _, r := range b.Rejected {
				assert.True(t, fault.Is(r.Err, fault.Invalid))
			}
		})
	}
}

func TestParseRunInstancesCapsIDs(t *testing.T) {
	var ids []string
	for i := 0; i < MaxRunInstancesIDs+5; i++ {
		ids = append(ids, quote("i-x"+strings.Repeat("0", 3)+string(rune('a'+i%26))+itoa(i)))
	}
	p := `{"id":"big","type":"ecs:ActionTrail:ApiCall","data":{"eventName":"RunInstances","referencedResources":{"ACS::ECS::Instance":[` + strings.Join(ids, ",") + `]}}}`
	b, err := Parse([]byte(p), "cn-hangzhou")
	require.NoError(t, err)
	assert.Len(t, b.Candidates, MaxRunInstancesIDs)
	assert.Len(t, b.Rejected, 1)
}

func quote(s string) string {
	return `"` + strings.ReplaceAll(s, `"`, `\"`) + `"`
}

func itoa(i int) string {
	const digits = "0123456789"
	if i < 10 {
		return digits[i : i+1]
	}
	return itoa(i/10) + digits[i%10:i%10+1]
}

func FuzzParse(f *testing.F) {
	entries, err := os.ReadDir(filepath.Join("..", "..", "events"))
	require.NoError(f, err)
	for _, e := range entries {
		f.Add(readEvent(f, e.Name()))
	}
	f.Add([]byte(`["{\"id\":\"x\",\"type\":\"ecs:Instance:StateChange\",\"data\":{\"state\":\"Running\",\"resourceId\":\"i-a\"}}"]`))
	f.Fuzz(func(t *testing.T, payload []byte) {
		b, err := Parse(payload, "cn-hangzhou")
		if err != nil {
			assert.True(t, fault.Is(err, fault.Invalid))
			return
		}
		for _, c := range b.Candidates {
			assert.True(t, len(c.InstanceID) <= 64 && strings.HasPrefix(c.InstanceID, "i-"))
			assert.NotEmpty(t, c.Region)
		}
	})
}

func TestParseTimeIsLenient(t *testing.T) {
	tests := map[string]bool{
		"2026-11-27T13:04:41+08:00":  true,
		"2026-11-27T05:04:41Z":       true,
		"2026-11-27T05:04:41.093Z":   true,
		"2026-11-27T13:04:42.179PRC": false,
		"20261127T130441.058+0800":   true,
		"yesterday-ish":              false,
		"":                           false,
	}
	for in, ok := range tests {
		assert.Equal(t, ok, !ParseTime(in).IsZero(), in)
	}
	b, err := Parse(readEvent(t, "instance-running.json"), "cn-hangzhou")
	require.NoError(t, err)
	assert.Equal(t, "2026-11-27T05:04:41Z", b.Candidates[0].EventTime.Format(time.RFC3339))
}
