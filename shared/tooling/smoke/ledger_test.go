package smoke

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/aliyun/alibabacloud-oss-go-sdk-v2/oss"
	osscred "github.com/aliyun/alibabacloud-oss-go-sdk-v2/oss/credentials"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hbr-autoinstall/hbr-autoinstall/shared/cloudauth"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/ledger"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/localcloud/callers"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/localcloud/osssim"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/ossstore"
)

const (
	ledgerAccount = "1234567890123456"
	simBucket     = "hbr-autoinstall-ledger-1234567890123456-cn-hangzhou"
)

var (
	operatorKey = cloudauth.Credentials{AccessKeyID: "LTAI5tOperator", AccessKeySecret: "operator-secret"}
	functionKey = cloudauth.Credentials{AccessKeyID: "STS.function", AccessKeySecret: "function-secret", SecurityToken: "function-token"}
)

// ledgerSim is the OSS emulator holding the region's ledger bucket, which
// the functions (writer) and the operator (OSSLedger) reach through the SDK.
type ledgerSim struct {
	sim *osssim.Server
	url string
}

func newLedgerSim(t *testing.T) ledgerSim {
	t.Helper()
	sim := osssim.New(osssim.Options{Principals: callers.Set{{Name: "operator", Credentials: operatorKey}, {Name: "install", Credentials: functionKey}}})
	url, err := sim.Start()
	require.NoError(t, err)
	t.Cleanup(func() { _ = sim.Close() })
	sim.CreateBucket(simBucket)
	return ledgerSim{sim: sim, url: url}
}

// functions is the ledger as the deployed functions write it.
func (s ledgerSim) functions(t *testing.T) *ledger.Ledger {
	t.Helper()
	st, err := ossstore.New(ossstore.Config{Endpoint: s.url, Region: "cn-hangzhou", Bucket: simBucket}, functionKey)
	require.NoError(t, err)
	return &ledger.Ledger{Store: st, Prefix: "hbr-autoinstall/ledger/", Account: ledgerAccount, Lease: time.Hour}
}

func (s ledgerSim) operator(t *testing.T, edit ...func(*LedgerConfig)) *OSSLedger {
	t.Helper()
	cfg := LedgerConfig{Endpoint: s.url, Region: "cn-hangzhou", Account: ledgerAccount, Timeout: 5 * time.Second}
	for _, f := range edit {
		f(&cfg)
	}
	l, err := NewOSSLedger(cfg, operatorKey)
	require.NoError(t, err)
	return l
}

// record writes what the functions write for the smoke instance: a claim
// and, unless outcome is empty, a final record.
func record(t *testing.T, l *ledger.Ledger, outcome string) {
	t.Helper()
	ctx := context.Background()
	d, err := l.Claim(ctx, ledger.Announcement{Region: "cn-hangzhou", Instance: testInstance, Job: "j1", EventTime: time.Now()})
	require.NoError(t, err)
	if outcome != "" {
		_, err = l.Finish(ctx, d.Owner, ledger.Final{Outcome: outcome, Code: "InstanceNotExists", Reason: "instance does not exist"})
		require.NoError(t, err)
	}
}

// TestRunReadsTheLedger runs the smoke check with a ledger in the OSS
// emulator, read through the SDK as make smoke reads it.
func TestRunReadsTheLedger(t *testing.T) {
	t.Parallel()
	gone := outcomeLine("GONE", "InstanceNotExists", "instance does not exist")
	ledgerFailure := &FunctionError{Type: "UnhandledInvocationError", Message: "handler.deliver: 1 step(s) failed (the trigger will redeliver): instance ledger, instance " +
		testInstance + " (job j1): create hbr-autoinstall/ledger/…/claim: oss.PutObject [NoSuchBucket]: bucket does not exist"}
	tests := []struct {
		name        string
		setup       func(t *testing.T, s ledgerSim)
		edit        func(*LedgerConfig)
		tr          *fakeTransport
		wantVerdict Verdict
		wantFailure Failure
		wantLedger  LedgerReport // compared without State, Unfit, CheckError and Error
		wantText    string       // in the diagnosis
		wantAlso    string       // in the diagnosis too
		wantUnfit   bool
		wantErr     bool // the instance's entries could not be read
	}{
		{
			name:  "the final record is there",
			setup: func(t *testing.T, s ledgerSim) { record(t, s.functions(t), "GONE") },
			tr:    &fakeTransport{logs: map[string][]string{"install": {gone}}}, wantVerdict: Pass,
			wantLedger: LedgerReport{Generation: 1, Job: "j1", Outcome: "GONE", Code: "InstanceNotExists", Reason: "instance does not exist"},
			wantText:   "recorded GONE",
		},
		{
			name: "a versioned bucket",
			setup: func(t *testing.T, s ledgerSim) {
				record(t, s.functions(t), "GONE")
				c := oss.NewClient(oss.NewConfig().WithRegion("cn-hangzhou").WithEndpoint(s.url).WithUsePathStyle(true).
					WithCredentialsProvider(osscred.NewStaticCredentialsProvider(operatorKey.AccessKeyID, operatorKey.AccessKeySecret, "")))
				_, err := c.PutBucketVersioning(context.Background(), &oss.PutBucketVersioningRequest{Bucket: oss.Ptr(simBucket),
					VersioningConfiguration: &oss.VersioningConfiguration{Status: oss.VersionEnabled}})
				require.NoError(t, err)
			},
			tr:          &fakeTransport{logs: map[string][]string{"install": {gone}}},
			wantVerdict: Fail, wantFailure: LedgerUnfit, wantUnfit: true,
			wantLedger: LedgerReport{Generation: 1, Job: "j1", Outcome: "GONE", Code: "InstanceNotExists", Reason: "instance does not exist"},
			wantText:   "cannot hold the instance ledger: provision.LedgerBucket [BucketVersioned]: the bucket is versioned",
		},
		{
			name:        "the functions write elsewhere",
			setup:       func(*testing.T, ledgerSim) {},
			tr:          &fakeTransport{logs: map[string][]string{"poller": {gone}}},
			wantVerdict: Fail, wantFailure: LedgerMissingRecord,
			wantText: "poller logged GONE for " + testInstance + ", but bucket " + simBucket + " holds no ledger entry for it under hbr-autoinstall/ledger/",
		},
		{
			name:        "a claim without its final record",
			setup:       func(t *testing.T, s ledgerSim) { record(t, s.functions(t), "") },
			tr:          &fakeTransport{logs: map[string][]string{"install": {gone}}},
			wantVerdict: Fail, wantFailure: LedgerMissingRecord,
			wantLedger: LedgerReport{Generation: 1, Job: "j1"},
			wantText:   "its ledger entry has no final record (generation 1 claimed at",
		},
		{
			name:        "another prefix is read",
			setup:       func(t *testing.T, s ledgerSim) { record(t, s.functions(t), "GONE") },
			edit:        func(c *LedgerConfig) { c.Prefix = "other/" },
			tr:          &fakeTransport{logs: map[string][]string{"install": {gone}}},
			wantVerdict: Fail, wantFailure: LedgerMissingRecord,
			wantText: "holds no ledger entry for it under other/",
		},
		{
			name:        "the bucket read does not exist: reported, verdict kept",
			setup:       func(*testing.T, ledgerSim) {},
			edit:        func(c *LedgerConfig) { c.Bucket = "no-such-ledger" },
			tr:          &fakeTransport{logs: map[string][]string{"install": {gone}}},
			wantVerdict: Pass, wantErr: true,
			wantText: "recorded GONE",
		},
		{
			name:        "the functions fail on the ledger, which does not exist",
			setup:       func(*testing.T, ledgerSim) {},
			edit:        func(c *LedgerConfig) { c.Bucket = "no-such-ledger" },
			tr:          &fakeTransport{invokeErr: ledgerFailure},
			wantVerdict: Fail, wantFailure: LedgerUnreachable, wantErr: true,
			wantText: "the functions cannot reach the ledger bucket no-such-ledger, where",
			wantAlso: "; reading the ledger with your AccessKey failed too: oss.GetBucketInfo [NoSuchBucket]",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := newLedgerSim(t)
			tt.setup(t, s)
			var edit []func(*LedgerConfig)
			if tt.edit != nil {
				edit = append(edit, tt.edit)
			}
			res := Run(context.Background(), Config{
				Region: "cn-hangzhou", InstanceID: testInstance, Ledger: s.operator(t, edit...),
				Timeout: 50 * time.Millisecond, PollEvery: 5 * time.Millisecond,
			}, tt.tr)
			assert.Equal(t, tt.wantVerdict, res.Verdict, res.Diagnosis)
			assert.Equal(t, tt.wantFailure, res.Failure, res.Diagnosis)
			assert.Contains(t, res.Diagnosis, tt.wantText)
			assert.Contains(t, res.Diagnosis, tt.wantAlso)
			require.NotNil(t, res.Ledger)
			got := *res.Ledger
			assert.Equal(t, tt.wantUnfit, got.Unfit != "", got.Unfit)
			assert.Equal(t, tt.wantErr, got.Error != "", got.Error)
			if !tt.wantErr {
				assert.Empty(t, got.CheckError)
			}
			got.Bucket, got.Prefix, got.State, got.Unfit, got.CheckError, got.Error = "", "", "", "", "", ""
			assert.Equal(t, tt.wantLedger, got)
		})
	}
}

func TestWriteShowsTheLedger(t *testing.T) {
	t.Parallel()
	s := newLedgerSim(t)
	record(t, s.functions(t), "GONE")
	tr := &fakeTransport{logs: map[string][]string{"install": {outcomeLine("GONE", "InstanceNotExists", "")}}}
	res := Run(context.Background(), Config{Region: "cn-hangzhou", InstanceID: testInstance, Ledger: s.operator(t), PollEvery: time.Millisecond}, tr)
	require.Equal(t, Pass, res.Verdict, res.Diagnosis)

	var out bytes.Buffer
	res.Write(&out)
	assert.Contains(t, out.String(), "  ledger    bucket "+simBucket+", prefix hbr-autoinstall/ledger/: private, not versioned, in the region\n")
	assert.Contains(t, out.String(), "  ledger    "+testInstance+": generation 1 final GONE (InstanceNotExists), recorded by j1\n")

	b, err := json.Marshal(res)
	require.NoError(t, err)
	var doc struct {
		Ledger struct {
			Bucket     string `json:"bucket"`
			Generation int    `json:"generation"`
			Outcome    string `json:"outcome"`
		} `json:"ledger"`
	}
	require.NoError(t, json.Unmarshal(b, &doc))
	assert.Equal(t, simBucket, doc.Ledger.Bucket)
	assert.Equal(t, 1, doc.Ledger.Generation)
	assert.Equal(t, "GONE", doc.Ledger.Outcome)
}

func TestNewOSSLedgerDefaults(t *testing.T) {
	t.Parallel()
	l, err := NewOSSLedger(LedgerConfig{Region: "cn-beijing", Account: "42"}, operatorKey)
	require.NoError(t, err)
	bucket, prefix := l.Where()
	assert.Equal(t, "hbr-autoinstall-ledger-42-cn-beijing", bucket)
	assert.Equal(t, "hbr-autoinstall/ledger/", prefix)

	_, err = NewOSSLedger(LedgerConfig{Region: "cn-beijing", Account: "42", Bucket: "Bad_Name"}, operatorKey)
	assert.Error(t, err)
	_, err = NewOSSLedger(LedgerConfig{Region: "cn-beijing", Account: "42"}, cloudauth.Credentials{})
	assert.Error(t, err)
}
