package osssim_test

// The real SDK (github.com/aliyun/alibabacloud-oss-go-sdk-v2) against the
// emulator: every request below is built, signed and parsed by the SDK.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/aliyun/alibabacloud-oss-go-sdk-v2/oss"
	osscred "github.com/aliyun/alibabacloud-oss-go-sdk-v2/oss/credentials"
	"github.com/aliyun/alibabacloud-oss-go-sdk-v2/oss/retry"
	"github.com/aliyun/alibabacloud-oss-go-sdk-v2/oss/signer"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hbr-autoinstall/hbr-autoinstall/shared/cloudauth"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/localcloud/osssim"
)

func sdkClient(base string, cred cloudauth.Credentials, edit ...func(*oss.Config)) *oss.Client {
	cfg := oss.NewConfig().
		WithRegion(region).
		WithEndpoint(base).
		WithUsePathStyle(true).
		WithRetryer(retry.NopRetryer{}).
		WithCredentialsProvider(osscred.NewStaticCredentialsProvider(cred.AccessKeyID, cred.AccessKeySecret, cred.SecurityToken))
	for _, f := range edit {
		f(cfg)
	}
	return oss.NewClient(cfg)
}

// serviceCode returns the OSS error code the SDK parsed from err.
func serviceCode(t *testing.T, err error) string {
	t.Helper()
	var se *oss.ServiceError
	require.ErrorAs(t, err, &se)
	assert.Len(t, se.RequestID, 24)
	return se.Code
}

func TestSDKBucketProvisioning(t *testing.T) {
	s, base := newServer(t, osssim.Options{})
	c := sdkClient(base, installer.Credentials)
	ctx := context.Background()
	const name = "hbr-ledger-new"

	ok, err := c.IsBucketExist(ctx, name)
	require.NoError(t, err)
	assert.False(t, ok)
	_, err = c.GetBucketInfo(ctx, &oss.GetBucketInfoRequest{Bucket: oss.Ptr(name)})
	assert.Equal(t, osssim.CodeNoSuchBucket, serviceCode(t, err))

	_, err = c.PutBucket(ctx, &oss.PutBucketRequest{Bucket: oss.Ptr(name), Acl: oss.BucketACLPrivate,
		CreateBucketConfiguration: &oss.CreateBucketConfiguration{StorageClass: oss.StorageClassStandard}})
	require.NoError(t, err)
	_, err = c.PutBucket(ctx, &oss.PutBucketRequest{Bucket: oss.Ptr(name)})
	assert.Equal(t, osssim.CodeBucketAlreadyExists, serviceCode(t, err))
	ok, err = c.IsBucketExist(ctx, name)
	require.NoError(t, err)
	assert.True(t, ok)

	info, err := c.GetBucketInfo(ctx, &oss.GetBucketInfoRequest{Bucket: oss.Ptr(name)})
	require.NoError(t, err)
	assert.Equal(t, name, oss.ToString(info.BucketInfo.Name))
	assert.Equal(t, "oss-"+region, oss.ToString(info.BucketInfo.Location))
	assert.Nil(t, info.BucketInfo.Versioning, "never versioned")

	v, err := c.GetBucketVersioning(ctx, &oss.GetBucketVersioningRequest{Bucket: oss.Ptr(name)})
	require.NoError(t, err)
	assert.Nil(t, v.VersionStatus)
	_, err = c.PutBucketVersioning(ctx, &oss.PutBucketVersioningRequest{Bucket: oss.Ptr(name),
		VersioningConfiguration: &oss.VersioningConfiguration{Status: oss.VersionEnabled}})
	require.NoError(t, err)
	v, err = c.GetBucketVersioning(ctx, &oss.GetBucketVersioningRequest{Bucket: oss.Ptr(name)})
	require.NoError(t, err)
	assert.Equal(t, "Enabled", oss.ToString(v.VersionStatus))
	info, err = c.GetBucketInfo(ctx, &oss.GetBucketInfoRequest{Bucket: oss.Ptr(name)})
	require.NoError(t, err)
	assert.Equal(t, "Enabled", oss.ToString(info.BucketInfo.Versioning))

	_, err = c.GetBucketLifecycle(ctx, &oss.GetBucketLifecycleRequest{Bucket: oss.Ptr(name)})
	assert.Equal(t, osssim.CodeNoSuchLifecycle, serviceCode(t, err))
	rules := &oss.LifecycleConfiguration{Rules: []oss.LifecycleRule{{
		ID: oss.Ptr("expire-outcomes"), Prefix: oss.Ptr("outcomes/"), Status: oss.Ptr("Enabled"),
		Expiration: &oss.LifecycleRuleExpiration{Days: oss.Ptr(int32(30))},
	}}}
	_, err = c.PutBucketLifecycle(ctx, &oss.PutBucketLifecycleRequest{Bucket: oss.Ptr(name), LifecycleConfiguration: rules})
	require.NoError(t, err)
	lc, err := c.GetBucketLifecycle(ctx, &oss.GetBucketLifecycleRequest{Bucket: oss.Ptr(name)})
	require.NoError(t, err)
	require.NotNil(t, lc.LifecycleConfiguration)
	require.Len(t, lc.LifecycleConfiguration.Rules, 1)
	got := lc.LifecycleConfiguration.Rules[0]
	assert.Equal(t, "expire-outcomes", oss.ToString(got.ID))
	assert.Equal(t, "outcomes/", oss.ToString(got.Prefix))
	assert.Equal(t, int32(30), *got.Expiration.Days)
	_, err = c.PutBucketLifecycle(ctx, &oss.PutBucketLifecycleRequest{Bucket: oss.Ptr(name),
		LifecycleConfiguration: &oss.LifecycleConfiguration{}})
	assert.Equal(t, osssim.CodeMalformedXML, serviceCode(t, err))
	_, err = c.DeleteBucketLifecycle(ctx, &oss.DeleteBucketLifecycleRequest{Bucket: oss.Ptr(name)})
	require.NoError(t, err)
	_, err = c.GetBucketLifecycle(ctx, &oss.GetBucketLifecycleRequest{Bucket: oss.Ptr(name)})
	assert.Equal(t, osssim.CodeNoSuchLifecycle, serviceCode(t, err))

	_, err = c.PutObject(ctx, &oss.PutObjectRequest{Bucket: oss.Ptr(name), Key: oss.Ptr("k"), Body: strings.NewReader("x")})
	require.NoError(t, err)
	_, err = c.DeleteBucket(ctx, &oss.DeleteBucketRequest{Bucket: oss.Ptr(name)})
	assert.Equal(t, osssim.CodeBucketNotEmpty, serviceCode(t, err))
	_, err = c.DeleteObject(ctx, &oss.DeleteObjectRequest{Bucket: oss.Ptr(name), Key: oss.Ptr("k")})
	require.NoError(t, err)
	_, err = c.DeleteBucket(ctx, &oss.DeleteBucketRequest{Bucket: oss.Ptr(name)})
	require.NoError(t, err)

	_, err = c.PutBucket(ctx, &oss.PutBucketRequest{Bucket: oss.Ptr("bad_name")})
	assert.Error(t, err, "the SDK refuses the name itself")

	calls := s.CallsBy()["install"]
	for _, op := range []string{"oss.PutBucket", "oss.GetBucketInfo", "oss.GetBucketAcl", "oss.GetBucketVersioning",
		"oss.PutBucketVersioning", "oss.GetBucketLifecycle", "oss.PutBucketLifecycle", "oss.DeleteBucketLifecycle",
		"oss.DeleteBucket", "oss.PutObject", "oss.DeleteObject"} {
		assert.Positive(t, calls[op], op)
	}
}

func TestSDKObjects(t *testing.T) {
	_, base := newServer(t, osssim.Options{})
	for _, tt := range []struct {
		name string
		cred cloudauth.Credentials
	}{{"STS principal", installer.Credentials}, {"key pair principal", poller.Credentials}} {
		t.Run(tt.name, func(t *testing.T) {
			c := sdkClient(base, tt.cred)
			ctx := context.Background()
			key := "objects/" + tt.cred.AccessKeyID + "/a b+c%d/ä.json"
			put, err := c.PutObject(ctx, &oss.PutObjectRequest{
				Bucket: oss.Ptr(bucket), Key: oss.Ptr(key), ForbidOverwrite: oss.Ptr("true"),
				Metadata: map[string]string{"owner": "job-1"}, Body: strings.NewReader(`{"x":1}`),
			})
			require.NoError(t, err, "the SDK checked our CRC-64 too")
			assert.NotEmpty(t, oss.ToString(put.HashCRC64))

			_, err = c.PutObject(ctx, &oss.PutObjectRequest{
				Bucket: oss.Ptr(bucket), Key: oss.Ptr(key), ForbidOverwrite: oss.Ptr("true"), Body: strings.NewReader(`{}`)})
			assert.Equal(t, osssim.CodeFileAlreadyExists, serviceCode(t, err))
			var se *oss.ServiceError
			require.ErrorAs(t, err, &se)
			assert.Equal(t, http.StatusConflict, se.StatusCode)
			assert.Equal(t, "0026-00000002", se.EC)

			got, err := c.GetObject(ctx, &oss.GetObjectRequest{Bucket: oss.Ptr(bucket), Key: oss.Ptr(key)})
			require.NoError(t, err)
			body, err := io.ReadAll(got.Body)
			require.NoError(t, got.Body.Close())
			require.NoError(t, err)
			assert.Equal(t, `{"x":1}`, string(body))
			assert.Equal(t, "application/json", oss.ToString(got.ContentType), "the SDK guessed it from .json")
			assert.Equal(t, map[string]string{"owner": "job-1"}, got.Metadata)
			assert.Equal(t, put.ETag, got.ETag)
			require.NotNil(t, got.LastModified)
			assert.WithinDuration(t, time.Now(), *got.LastModified, time.Minute)

			ok, err := c.IsObjectExist(ctx, bucket, key)
			require.NoError(t, err)
			assert.True(t, ok)
			ok, err = c.IsObjectExist(ctx, bucket, key+".missing")
			require.NoError(t, err, "HeadObject's 404 is read from x-oss-err")
			assert.False(t, ok)
			head, err := c.HeadObject(ctx, &oss.HeadObjectRequest{Bucket: oss.Ptr(bucket), Key: oss.Ptr(key + ".missing")})
			assert.Nil(t, head)
			assert.Equal(t, osssim.CodeNoSuchKey, serviceCode(t, err))

			_, err = c.GetObject(ctx, &oss.GetObjectRequest{Bucket: oss.Ptr(bucket), Key: oss.Ptr(key + ".missing")})
			assert.Equal(t, osssim.CodeNoSuchKey, serviceCode(t, err))
			_, err = c.DeleteObject(ctx, &oss.DeleteObjectRequest{Bucket: oss.Ptr(bucket), Key: oss.Ptr(key)})
			require.NoError(t, err)
			_, err = c.GetObject(ctx, &oss.GetObjectRequest{Bucket: oss.Ptr(bucket), Key: oss.Ptr(key)})
			assert.Equal(t, osssim.CodeNoSuchKey, serviceCode(t, err))
		})
	}
}

func TestSDKListObjectsV2(t *testing.T) {
	s, base := newServer(t, osssim.Options{})
	keys := []string{"a/1", "a/2", "b 1", "b+2", "c/x/1", "c/x/2", "c/y", "d%", "é"}
	for _, k := range keys {
		require.NoError(t, s.PutObject(bucket, k, []byte(k)))
	}
	c := sdkClient(base, poller.Credentials)
	ctx := context.Background()

	var gotKeys, gotPrefixes []string
	p := c.NewListObjectsV2Paginator(&oss.ListObjectsV2Request{Bucket: oss.Ptr(bucket), Delimiter: oss.Ptr("/"), MaxKeys: 2})
	pages := 0
	for p.HasNext() {
		page, err := p.NextPage(ctx)
		require.NoError(t, err)
		pages++
		assert.LessOrEqual(t, page.KeyCount, 2)
		assert.Equal(t, page.KeyCount, len(page.Contents)+len(page.CommonPrefixes))
		for _, o := range page.Contents {
			gotKeys = append(gotKeys, oss.ToString(o.Key))
			assert.Equal(t, int64(len(oss.ToString(o.Key))), o.Size)
			assert.NotNil(t, o.LastModified)
			assert.NotEmpty(t, oss.ToString(o.ETag))
		}
		for _, cp := range page.CommonPrefixes {
			gotPrefixes = append(gotPrefixes, oss.ToString(cp.Prefix))
		}
	}
	assert.Equal(t, []string{"b 1", "b+2", "d%", "é"}, gotKeys, "keys come back URL-decoded")
	assert.Equal(t, []string{"a/", "c/"}, gotPrefixes)
	assert.Equal(t, 3, pages)

	res, err := c.ListObjectsV2(ctx, &oss.ListObjectsV2Request{Bucket: oss.Ptr(bucket), Prefix: oss.Ptr("c/"), StartAfter: oss.Ptr("c/x/1")})
	require.NoError(t, err)
	require.Len(t, res.Contents, 2)
	assert.Equal(t, "c/x/2", oss.ToString(res.Contents[0].Key))
	assert.False(t, res.IsTruncated)
	assert.Equal(t, "c/x/1", oss.ToString(res.StartAfter))
	assert.Equal(t, "c/", oss.ToString(res.Prefix))
	assert.Equal(t, int32(osssim.DefaultMaxKeys), res.MaxKeys)

	_, err = c.ListObjectsV2(ctx, &oss.ListObjectsV2Request{Bucket: oss.Ptr("no-such-bucket")})
	assert.Equal(t, osssim.CodeNoSuchBucket, serviceCode(t, err))
}

func TestSDKAuthenticationFailures(t *testing.T) {
	wrongSecret := poller.Credentials
	wrongSecret.AccessKeySecret = "wrong"
	noToken := installer.Credentials
	noToken.SecurityToken = ""
	tests := []struct {
		name string
		cred cloudauth.Credentials
		opts osssim.Options
		edit func(*oss.Config)
		code string
	}{
		{"wrong secret", wrongSecret, osssim.Options{}, nil, osssim.CodeSignatureDoesNotMatch},
		{"missing token", noToken, osssim.Options{}, nil, osssim.CodeInvalidSecurityToken},
		{"unknown key", cloudauth.Credentials{AccessKeyID: "LTAIx", AccessKeySecret: "x"}, osssim.Options{}, nil, osssim.CodeInvalidAccessKeyID},
		{"server clock 20 minutes ahead", poller.Credentials,
			osssim.Options{WallClock: func() time.Time { return time.Now().Add(20 * time.Minute) }}, nil, osssim.CodeRequestTimeTooSkewed},
		{"other region", poller.Credentials, osssim.Options{}, func(c *oss.Config) { c.WithRegion("cn-beijing") }, osssim.CodeInvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, base := newServer(t, tt.opts)
			var edit []func(*oss.Config)
			if tt.edit != nil {
				edit = append(edit, tt.edit)
			}
			c := sdkClient(base, tt.cred, edit...)
			_, err := c.GetObject(context.Background(), &oss.GetObjectRequest{Bucket: oss.Ptr(bucket), Key: oss.Ptr("k")})
			assert.Equal(t, tt.code, serviceCode(t, err))
		})
	}
}

// TestSignMatchesTheSDKSigner signs the same request with the SDK's V4
// signer and with Sign: the Authorization headers must be identical.
func TestSignMatchesTheSDKSigner(t *testing.T) {
	at := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	tests := []struct {
		name, method, bucket, key, query string
		headers                          map[string]string
		cred                             cloudauth.Credentials
	}{
		{"put with forbid-overwrite", http.MethodPut, bucket, "instances/i-1", "",
			map[string]string{"x-oss-forbid-overwrite": "true", "Content-Type": "application/json"}, installer.Credentials},
		{"list with odd query", http.MethodGet, bucket, "", "list-type=2&prefix=a%20b%2Bc&start-after=x&encoding-type=url&max-keys=10",
			map[string]string{"Content-Type": "application/octet-stream"}, poller.Credentials},
		{"odd key", http.MethodGet, bucket, "a b/ä+%/~*", "", nil, installer.Credentials},
		{"sub-resource", http.MethodGet, bucket, "", "versioning", nil, poller.Credentials},
		{"no bucket", http.MethodGet, "", "", "", nil, poller.Credentials},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			build := func() *http.Request {
				u := &url.URL{Scheme: "http", Host: "127.0.0.1:1", Path: "/", RawQuery: tt.query}
				if tt.bucket != "" {
					u.Path += tt.bucket + "/" + tt.key
				}
				r, err := http.NewRequest(tt.method, u.String(), nil)
				require.NoError(t, err)
				for k, v := range tt.headers {
					r.Header.Set(k, v)
				}
				return r
			}
			ours := build()
			osssim.Sign(ours, tt.cred, region, tt.bucket, tt.key, at)

			theirs := build()
			sc := &signer.SigningContext{
				Product: oss.Ptr("oss"), Region: oss.Ptr(region), Request: theirs, Time: at,
				Credentials: &osscred.Credentials{AccessKeyID: tt.cred.AccessKeyID,
					AccessKeySecret: tt.cred.AccessKeySecret, SecurityToken: tt.cred.SecurityToken},
			}
			if tt.bucket != "" {
				sc.Bucket = oss.Ptr(tt.bucket)
			}
			if tt.key != "" {
				sc.Key = oss.Ptr(tt.key)
			}
			require.NoError(t, (&signer.SignerV4{}).Sign(context.Background(), sc))
			assert.Equal(t, theirs.Header.Get("Authorization"), ours.Header.Get("Authorization"))
			assert.Equal(t, theirs.Header.Get("x-oss-date"), ours.Header.Get("x-oss-date"))
		})
	}
}

// TestSDKAdditionalHeadersAreVerified has the SDK sign an extra header;
// changing it in flight must break the signature.
func TestSDKAdditionalHeadersAreVerified(t *testing.T) {
	_, base := newServer(t, osssim.Options{})
	var tamper bool
	client := &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		if tamper {
			r.Header.Set("x-extra", "changed")
		}
		return http.DefaultTransport.RoundTrip(r)
	})}
	c := sdkClient(base, poller.Credentials, func(c *oss.Config) {
		c.WithAdditionalHeaders([]string{"x-extra"}).
			WithDefaultRequestHeaders(map[string]string{"x-extra": "signed"}).
			WithHttpClient(client)
	})
	ctx := context.Background()
	_, err := c.ListObjectsV2(ctx, &oss.ListObjectsV2Request{Bucket: oss.Ptr(bucket)})
	require.NoError(t, err)
	tamper = true
	_, err = c.ListObjectsV2(ctx, &oss.ListObjectsV2Request{Bucket: oss.Ptr(bucket)})
	assert.Equal(t, osssim.CodeSignatureDoesNotMatch, serviceCode(t, err))
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// TestSDKVirtualHostedStyle points the SDK at "localhost" without
// path-style: it then sends Host: <bucket>.localhost:PORT, which the
// emulator routes by Options.Domain. The dialler sends every connection to
// the emulator.
func TestSDKVirtualHostedStyle(t *testing.T) {
	s, base := newServer(t, osssim.Options{})
	addr := strings.TrimPrefix(base, "http://")
	port := addr[strings.LastIndex(addr, ":"):]
	var hosts []string
	transport := &http.Transport{DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, network, addr)
	}}
	client := &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		hosts = append(hosts, r.URL.Host)
		return transport.RoundTrip(r)
	})}
	c := sdkClient("http://localhost"+port, installer.Credentials, func(c *oss.Config) {
		c.WithUsePathStyle(false).WithHttpClient(client)
	})
	ctx := context.Background()
	_, err := c.PutObject(ctx, &oss.PutObjectRequest{Bucket: oss.Ptr(bucket), Key: oss.Ptr("vh/k"), Body: strings.NewReader("v")})
	require.NoError(t, err)
	res, err := c.ListObjectsV2(ctx, &oss.ListObjectsV2Request{Bucket: oss.Ptr(bucket), Prefix: oss.Ptr("vh/")})
	require.NoError(t, err)
	require.Len(t, res.Contents, 1)
	assert.Equal(t, map[string][]byte{"vh/k": []byte("v")}, s.Objects(bucket, "vh/"))
	assert.Equal(t, []string{bucket + ".localhost" + port, bucket + ".localhost" + port}, hosts)
}

func TestSDKSeesThrottlingAndServerErrors(t *testing.T) {
	s, base := newServer(t, osssim.Options{})
	c := sdkClient(base, installer.Credentials)
	ctx := context.Background()
	for _, tt := range []struct {
		faults osssim.Faults
		status int
		code   string
	}{
		{osssim.Faults{ThrottleNext: 1}, 503, osssim.CodeTotalQPSLimit},
		{osssim.Faults{ThrottleNext: 1, ThrottleStatus: 429}, 429, osssim.CodeQPSLimitExceeded},
		{osssim.Faults{ServerErrorNext: 1}, 500, osssim.CodeInternalError},
	} {
		t.Run(fmt.Sprint(tt.status), func(t *testing.T) {
			s.SetFaults(tt.faults)
			_, err := c.GetObject(ctx, &oss.GetObjectRequest{Bucket: oss.Ptr(bucket), Key: oss.Ptr("k")})
			var se *oss.ServiceError
			require.True(t, errors.As(err, &se))
			assert.Equal(t, tt.status, se.StatusCode)
			assert.Equal(t, tt.code, se.Code)
		})
	}
}
