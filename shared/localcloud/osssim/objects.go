package osssim

import (
	"bytes"
	"crypto/md5"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/xml"
	"hash/crc64"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// crcTable is CRC-64/ECMA-182 as OSS reports it in x-oss-hash-crc64ecma
// (decimal); the SDK checks it after PutObject (oss/utils_crc.go, [CODE]).
var crcTable = crc64.MakeTable(crc64.ECMA)

// owner is the bucket owner reported by GetBucketInfo and GetBucketAcl.
var owner = xmlOwner{ID: "1234567890123456", DisplayName: "1234567890123456"}

// bucket is one bucket's state. Everything in it is guarded by Server.mu.
type bucket struct {
	name       string
	created    time.Time
	versioning string // "", VersioningEnabled or VersioningSuspended
	lifecycle  []byte // the PutBucketLifecycle body, nil when none
	objects    map[string]*object
	keys       keyIndex // the keys of objects, in order
	versions   uint64
}

// object is one stored object. It is never modified once stored (an
// overwrite stores a new one), so readers may use it after unlocking.
type object struct {
	body        []byte
	etag        string // quoted upper-case hex MD5
	md5         string // base64 MD5
	crc         string // decimal CRC-64/ECMA
	modified    time.Time
	contentType string
	meta        http.Header // x-oss-meta-* headers as sent
	versionID   string
}

// newObject builds an object holding body (which it keeps).
func newObject(body []byte, contentType string, now time.Time) *object {
	if body == nil {
		body = []byte{}
	}
	if contentType == "" {
		contentType = "application/octet-stream"
	}
	sum := md5.Sum(body)
	return &object{
		body:        body,
		etag:        `"` + strings.ToUpper(hex.EncodeToString(sum[:])) + `"`,
		md5:         base64.StdEncoding.EncodeToString(sum[:]),
		crc:         strconv.FormatUint(crc64.Checksum(body, crcTable), 10),
		modified:    now,
		contentType: contentType,
	}
}

func newBucket(name string, now time.Time) *bucket {
	return &bucket{name: name, created: now, objects: make(map[string]*object)}
}

func (b *bucket) put(key string, o *object) {
	if _, ok := b.objects[key]; !ok {
		b.keys.insert(key)
	}
	b.objects[key] = o
}

func (b *bucket) delete(key string) {
	if _, ok := b.objects[key]; !ok {
		return
	}
	delete(b.objects, key)
	b.keys.delete(key)
}

// checkKey validates an object key as OSS does: 1..1023 bytes of UTF-8, not
// starting with '/' or '\'.
func checkKey(key string) *apiError {
	if key == "" || len(key) > MaxKeyBytes || !utf8.ValidString(key) || key[0] == '/' || key[0] == '\\' {
		return newError(http.StatusBadRequest, CodeInvalidObjectName, "The specified object is not valid.")
	}
	return nil
}

// ---- objects ----

func (s *Server) putObject(q *request) reply {
	if e := checkKey(q.key); e != nil {
		return failed(e)
	}
	h := q.r.Header
	forbid := false
	switch v := h.Get("x-oss-forbid-overwrite"); {
	case v == "" || strings.EqualFold(v, "false"):
	case strings.EqualFold(v, "true"):
		forbid = true
	default:
		// [DOC] https://help.aliyun.com/en/oss/user-guide/0017-00000279
		return failed(invalidArgument("The value of x-oss-forbid-overwrite must be true or false."))
	}
	o := newObject(q.body, h.Get("Content-Type"), q.now)
	if want := h.Get("Content-MD5"); want != "" && want != o.md5 {
		return failed(newError(http.StatusBadRequest, CodeInvalidDigest, "The Content-MD5 you specified was invalid."))
	}
	if v := h.Get(hdrSHA256); v != "" && v != UnsignedPayload {
		got := sha256.Sum256(q.body)
		if !strings.EqualFold(v, hex.EncodeToString(got[:])) {
			return failed(invalidArgument("The x-oss-content-sha256 you specified does not match the body."))
		}
	}
	for k, v := range h {
		if strings.HasPrefix(strings.ToLower(k), "x-oss-meta-") {
			if o.meta == nil {
				o.meta = make(http.Header)
			}
			o.meta[k] = v
		}
	}

	s.mu.Lock()
	b, ok := s.buckets[q.bucket]
	if !ok {
		s.mu.Unlock()
		return failed(errNoSuchBucket.withBucket(q.bucket))
	}
	if _, exists := b.objects[q.key]; exists && forbid && b.versioning == "" {
		s.mu.Unlock()
		return failed(errFileExists())
	}
	switch b.versioning {
	case VersioningEnabled:
		b.versions++
		o.versionID = "CAEQ" + strconv.FormatUint(b.versions, 10) + "GIGA"
	case VersioningSuspended:
		o.versionID = "null"
	}
	b.put(q.key, o)
	s.mu.Unlock()

	rh := make(http.Header, 4)
	rh.Set("ETag", o.etag)
	rh.Set("Content-MD5", o.md5)
	rh.Set("x-oss-hash-crc64ecma", o.crc)
	if o.versionID != "" {
		rh.Set("x-oss-version-id", o.versionID)
	}
	return reply{status: http.StatusOK, header: rh}
}

// lookup returns the object at q's bucket and key.
func (s *Server) lookup(q *request) (*object, *apiError) {
	if e := checkKey(q.key); e != nil {
		return nil, e
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.buckets[q.bucket]
	if !ok {
		return nil, errNoSuchBucket.withBucket(q.bucket)
	}
	o, ok := b.objects[q.key]
	if !ok {
		return nil, errNoSuchKey.withKey(q.key)
	}
	return o, nil
}

func objectHeaders(o *object) http.Header {
	h := make(http.Header, 10+len(o.meta))
	h.Set("Content-Type", o.contentType)
	h.Set("Content-Length", strconv.Itoa(len(o.body)))
	h.Set("ETag", o.etag)
	h.Set("Last-Modified", o.modified.UTC().Format(http.TimeFormat))
	h.Set("Content-MD5", o.md5)
	h.Set("x-oss-hash-crc64ecma", o.crc)
	h.Set("x-oss-object-type", "Normal")
	h.Set("x-oss-storage-class", "Standard")
	if o.versionID != "" {
		h.Set("x-oss-version-id", o.versionID)
	}
	for k, v := range o.meta {
		h[k] = v
	}
	return h
}

func (s *Server) getObject(q *request) reply {
	o, e := s.lookup(q)
	if e != nil {
		return failed(e)
	}
	return reply{status: http.StatusOK, header: objectHeaders(o), body: o.body}
}

func (s *Server) headObject(q *request) reply {
	o, e := s.lookup(q)
	if e != nil {
		return failed(e)
	}
	return reply{status: http.StatusOK, header: objectHeaders(o)}
}

// deleteObject answers 204 whether or not the object existed, as OSS does.
func (s *Server) deleteObject(q *request) reply {
	if e := checkKey(q.key); e != nil {
		return failed(e)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.buckets[q.bucket]
	if !ok {
		return failed(errNoSuchBucket.withBucket(q.bucket))
	}
	b.delete(q.key)
	return reply{status: http.StatusNoContent}
}

// ---- ListObjectsV2 ----

func (s *Server) listObjectsV2(q *request) reply {
	v := q.query
	prefix, delimiter, startAfter := v.Get("prefix"), v.Get("delimiter"), v.Get("start-after")
	maxKeys := DefaultMaxKeys
	if v.Has("max-keys") {
		n, err := strconv.Atoi(v.Get("max-keys"))
		if err != nil || n < 1 || n > MaxKeys {
			return failed(invalidArgument("The max-keys must be an integer between 1 and 1000."))
		}
		maxKeys = n
	}
	if len(prefix) > MaxKeyBytes || len(startAfter) > MaxKeyBytes {
		return failed(invalidArgument("The prefix and start-after must be shorter than 1024 bytes."))
	}
	encodeURL := false
	switch et := v.Get("encoding-type"); et {
	case "":
	case "url":
		encodeURL = true
	default:
		return failed(invalidArgument("The encoding-type must be url."))
	}
	after := startAfter
	if v.Has("continuation-token") {
		raw, err := base64.RawURLEncoding.DecodeString(v.Get("continuation-token"))
		if err != nil {
			return failed(invalidArgument("The continuation-token is not valid."))
		}
		after = string(raw)
	}

	out := xmlListV2{Name: q.bucket, MaxKeys: maxKeys}
	var next string
	s.mu.Lock()
	b, ok := s.buckets[q.bucket]
	if !ok {
		s.mu.Unlock()
		return failed(errNoSuchBucket.withBucket(q.bucket))
	}
	lastPrefix := after // a common prefix equal to this was returned already
	b.keys.ascend(max(prefix, after), func(k string) bool {
		if !strings.HasPrefix(k, prefix) {
			return false
		}
		if k <= after {
			return true
		}
		entry, isPrefix := k, false
		if delimiter != "" {
			if i := strings.Index(k[len(prefix):], delimiter); i >= 0 {
				entry, isPrefix = k[:len(prefix)+i+len(delimiter)], true
				if entry == lastPrefix {
					return true
				}
			}
		}
		if out.KeyCount == maxKeys {
			out.IsTruncated = true
			return false
		}
		out.KeyCount++
		next = entry
		if isPrefix {
			lastPrefix = entry
			out.CommonPrefixes = append(out.CommonPrefixes, xmlCommonPrefix{Prefix: entry})
			return true
		}
		o := b.objects[k]
		out.Contents = append(out.Contents, xmlContents{
			Key: k, LastModified: formatTime(o.modified), ETag: o.etag,
			Type: "Normal", Size: len(o.body), StorageClass: "Standard",
		})
		return true
	})
	s.mu.Unlock()

	enc := func(s string) string { return s }
	if encodeURL {
		enc = func(s string) string { return strings.ReplaceAll(url.QueryEscape(s), "+", "%20") }
		out.EncodingType = ptr("url")
	}
	out.Prefix = enc(prefix)
	if v.Has("start-after") {
		out.StartAfter = ptr(enc(startAfter))
	}
	if v.Has("continuation-token") {
		out.ContinuationToken = ptr(v.Get("continuation-token"))
	}
	if delimiter != "" {
		out.Delimiter = ptr(enc(delimiter))
	}
	if out.IsTruncated {
		out.NextContinuationToken = ptr(base64.RawURLEncoding.EncodeToString([]byte(next)))
	}
	for i := range out.Contents {
		out.Contents[i].Key = enc(out.Contents[i].Key)
	}
	for i := range out.CommonPrefixes {
		out.CommonPrefixes[i].Prefix = enc(out.CommonPrefixes[i].Prefix)
	}
	return xmlReply(http.StatusOK, out)
}

func ptr[T any](v T) *T { return &v }

// ---- buckets ----

// validBucketName: 3..63 lower-case letters, digits or '-', not starting
// or ending with '-'.
func validBucketName(name string) bool {
	if len(name) < 3 || len(name) > 63 || name[0] == '-' || name[len(name)-1] == '-' {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// withBucket returns a copy of e naming the bucket.
func (e *apiError) withBucket(name string) *apiError {
	c := *e
	c.extra = nil
	return c.with("BucketName", name)
}

// withKey returns a copy of e naming the key.
func (e *apiError) withKey(key string) *apiError {
	c := *e
	c.extra = nil
	return c.with("Key", key)
}

// putBucket creates the bucket; 409 BucketAlreadyExists if it exists
// ([UNVERIFIED] for a bucket the caller already owns).
func (s *Server) putBucket(q *request) reply {
	if !validBucketName(q.bucket) {
		return failed(newError(http.StatusBadRequest, CodeInvalidBucketName, "The specified bucket is not valid."))
	}
	if len(bytes.TrimSpace(q.body)) > 0 {
		var cfg struct {
			XMLName xml.Name `xml:"CreateBucketConfiguration"`
		}
		if err := xml.Unmarshal(q.body, &cfg); err != nil {
			return failed(malformedXML())
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.buckets[q.bucket]; ok {
		return failed(newError(http.StatusConflict, CodeBucketAlreadyExists,
			"The requested bucket name is not available. The bucket namespace is shared by all users of the system. Please select a different name and try again."))
	}
	s.buckets[q.bucket] = newBucket(q.bucket, q.now)
	rh := make(http.Header, 1)
	rh.Set("Location", "/"+q.bucket)
	return reply{status: http.StatusOK, header: rh}
}

func (s *Server) deleteBucket(q *request) reply {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.buckets[q.bucket]
	if !ok {
		return failed(errNoSuchBucket.withBucket(q.bucket))
	}
	if len(b.objects) > 0 {
		return failed(newError(http.StatusConflict, CodeBucketNotEmpty,
			"The bucket you tried to delete is not empty."))
	}
	delete(s.buckets, q.bucket)
	return reply{status: http.StatusNoContent}
}

// inBucket runs fn on q's bucket under the lock; 404 NoSuchBucket when
// there is none.
func (s *Server) inBucket(q *request, fn func(b *bucket) reply) reply {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.buckets[q.bucket]
	if !ok {
		return failed(errNoSuchBucket.withBucket(q.bucket))
	}
	return fn(b)
}

func (s *Server) getBucketInfo(q *request) reply {
	return s.inBucket(q, func(b *bucket) reply {
		var out xmlBucketInfo
		out.Bucket.Name = b.name
		out.Bucket.Location = "oss-" + s.opts.Region
		out.Bucket.CreationDate = formatTime(b.created)
		out.Bucket.ExtranetEndpoint = "oss-" + s.opts.Region + ".aliyuncs.com"
		out.Bucket.IntranetEndpoint = "oss-" + s.opts.Region + "-internal.aliyuncs.com"
		out.Bucket.StorageClass = "Standard"
		out.Bucket.DataRedundancyType = "LRS"
		out.Bucket.Versioning = b.versioning
		out.Bucket.Owner = owner
		out.Bucket.AccessControlList.Grant = "private"
		return xmlReply(http.StatusOK, out)
	})
}

func (s *Server) getBucketACL(q *request) reply {
	return s.inBucket(q, func(*bucket) reply {
		return xmlReply(http.StatusOK, xmlAccessControlPolicy{Owner: owner, AccessControlList: xmlACL{Grant: "private"}})
	})
}

func (s *Server) getBucketVersioning(q *request) reply {
	return s.inBucket(q, func(b *bucket) reply {
		return xmlReply(http.StatusOK, xmlVersioning{Status: b.versioning})
	})
}

// putBucketVersioning sets Enabled or Suspended; like OSS, a bucket once
// versioned can only be suspended, never returned to unversioned.
func (s *Server) putBucketVersioning(q *request) reply {
	var in xmlVersioning
	if err := xml.Unmarshal(q.body, &in); err != nil {
		return failed(malformedXML())
	}
	if in.Status != VersioningEnabled && in.Status != VersioningSuspended {
		return failed(malformedXML())
	}
	return s.inBucket(q, func(b *bucket) reply {
		b.versioning = in.Status
		return reply{status: http.StatusOK}
	})
}

func (s *Server) putBucketLifecycle(q *request) reply {
	var in xmlLifecycle
	if err := xml.Unmarshal(q.body, &in); err != nil || len(in.Rules) == 0 {
		return failed(malformedXML())
	}
	for _, r := range in.Rules {
		if r.Status != "Enabled" && r.Status != "Disabled" {
			return failed(malformedXML())
		}
	}
	return s.inBucket(q, func(b *bucket) reply {
		b.lifecycle = q.body
		return reply{status: http.StatusOK}
	})
}

func (s *Server) getBucketLifecycle(q *request) reply {
	return s.inBucket(q, func(b *bucket) reply {
		if b.lifecycle == nil {
			return failed(newError(http.StatusNotFound, CodeNoSuchLifecycle,
				"No Row found in Lifecycle Table.").with("BucketName", b.name))
		}
		rh := make(http.Header, 1)
		rh.Set("Content-Type", "application/xml")
		body := b.lifecycle
		if !bytes.HasPrefix(bytes.TrimSpace(body), []byte("<?xml")) {
			body = append([]byte(xml.Header), body...)
		}
		return reply{status: http.StatusOK, header: rh, body: body}
	})
}

func (s *Server) deleteBucketLifecycle(q *request) reply {
	return s.inBucket(q, func(b *bucket) reply {
		b.lifecycle = nil
		return reply{status: http.StatusNoContent}
	})
}

func malformedXML() *apiError {
	return newError(http.StatusBadRequest, CodeMalformedXML,
		"The XML you provided was not well-formed or did not validate against our published schema.")
}
