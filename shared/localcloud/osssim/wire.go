package osssim

import (
	"bytes"
	"encoding/base64"
	"encoding/xml"
	"net/http"
	"strconv"
	"time"
)

// Error codes the emulator answers with. Sources ([DOC], read 2026): the
// error document and x-oss-ec
// (https://www.alibabacloud.com/help/doc-detail/32005.htm); AccessDenied,
// InvalidAccessKeyId and InvalidSecurityToken, all 403
// (https://www.alibabacloud.com/help/en/oss/how-to-troubleshoot-403-status-code-when-you-access-oss);
// SignatureDoesNotMatch and RequestTimeTooSkewed, 403, and a missing date
// as AccessDenied (the OSS API reference quoted at
// https://developer.aliyun.com/ask/2590); FileAlreadyExists, 409
// (https://help.aliyun.com/en/oss/user-guide/0026-00000002); the 503
// throttling codes (https://help.aliyun.com/zh/oss/support/http-status-code-503)
// and 429 QpsLimitExceeded (https://help.aliyun.com/en/oss/user-guide/429-error);
// BucketAlreadyExists and BucketNotEmpty, 409 (the error code list quoted
// at https://developer.aliyun.com/ask/213834). The messages, and the codes
// not named above (S3-style names OSS is believed to share), are
// [UNVERIFIED]: callers branch on status and the codes above only.
const (
	CodeAccessDenied          = "AccessDenied"          // 403
	CodeInvalidAccessKeyID    = "InvalidAccessKeyId"    // 403
	CodeInvalidSecurityToken  = "InvalidSecurityToken"  // 403
	CodeSignatureDoesNotMatch = "SignatureDoesNotMatch" // 403
	CodeRequestTimeTooSkewed  = "RequestTimeTooSkewed"  // 403
	CodeFileAlreadyExists     = "FileAlreadyExists"     // 409
	CodeNoSuchKey             = "NoSuchKey"             // 404
	CodeNoSuchBucket          = "NoSuchBucket"          // 404
	CodeNoSuchLifecycle       = "NoSuchLifecycle"       // 404
	CodeBucketAlreadyExists   = "BucketAlreadyExists"   // 409
	CodeBucketNotEmpty        = "BucketNotEmpty"        // 409
	CodeInvalidArgument       = "InvalidArgument"       // 400
	CodeInvalidBucketName     = "InvalidBucketName"     // 400
	CodeInvalidObjectName     = "InvalidObjectName"     // 400
	CodeInvalidDigest         = "InvalidDigest"         // 400
	CodeMalformedXML          = "MalformedXML"          // 400
	CodeEntityTooLarge        = "EntityTooLarge"        // 400
	CodeMethodNotAllowed      = "MethodNotAllowed"      // 405
	CodeTotalQPSLimit         = "TotalQpsLimitExceeded" // 503, throttling
	CodeQPSLimitExceeded      = "QpsLimitExceeded"      // 429, throttling
	CodeInternalError         = "InternalError"         // 500
)

// apiError is an error response.
type apiError struct {
	status  int
	code    string
	message string
	ec      string            // the fine-grained EC, only where documented
	extra   map[string]string // further <Error> children, e.g. Key, BucketName
}

func newError(status int, code, message string) *apiError {
	return &apiError{status: status, code: code, message: message}
}

func (e *apiError) with(name, value string) *apiError {
	if e.extra == nil {
		e.extra = make(map[string]string, 2)
	}
	e.extra[name] = value
	return e
}

var (
	errAnonymous = newError(http.StatusForbidden, CodeAccessDenied,
		"AccessDenied: anonymous access is not allowed; sign the request with OSS4-HMAC-SHA256.")
	errNotV4 = newError(http.StatusForbidden, CodeAccessDenied,
		"The emulator accepts only OSS4-HMAC-SHA256 signatures in the Authorization header.")
	errUnknownKey = newError(http.StatusForbidden, CodeInvalidAccessKeyID,
		"The OSS Access Key Id you provided does not exist in our records.")
	errBadToken = newError(http.StatusForbidden, CodeInvalidSecurityToken,
		"The security token you provided is invalid.")
	errNoDate = newError(http.StatusForbidden, CodeAccessDenied,
		"The x-oss-date header is missing or malformed.")
	errNoSuchKey = newError(http.StatusNotFound, CodeNoSuchKey,
		"The specified key does not exist.")
	errNoSuchBucket = newError(http.StatusNotFound, CodeNoSuchBucket,
		"The specified bucket does not exist.")
	errNotAllowed = newError(http.StatusMethodNotAllowed, CodeMethodNotAllowed,
		"The specified method is not allowed against this resource.")
	errThrottled = newError(http.StatusServiceUnavailable, CodeTotalQPSLimit,
		"Max total qps limit is exceeded.")
	errThrottled429 = newError(http.StatusTooManyRequests, CodeQPSLimitExceeded,
		"Please reduce your request rate.")
	errInternal = newError(http.StatusInternalServerError, CodeInternalError,
		"We encountered an internal error. Please try again.")
)

func errFileExists() *apiError {
	e := newError(http.StatusConflict, CodeFileAlreadyExists,
		"The object you specified already exists and can not be overwritten.")
	e.ec = "0026-00000002"
	return e
}

func invalidArgument(message string) *apiError {
	return newError(http.StatusBadRequest, CodeInvalidArgument, message)
}

// errorBody renders the <Error> document OSS sends.
func errorBody(e *apiError, requestID, hostID string) []byte {
	var b bytes.Buffer
	b.Grow(320)
	b.WriteString(xml.Header)
	b.WriteString("<Error>\n")
	element(&b, "Code", e.code)
	element(&b, "Message", e.message)
	element(&b, "RequestId", requestID)
	element(&b, "HostId", hostID)
	for _, name := range []string{"BucketName", "Key", "StringToSign", "RequestTime", "ServerTime", "MaxAllowedSkewMilliseconds", "OSSAccessKeyId"} {
		if v, ok := e.extra[name]; ok {
			element(&b, name, v)
		}
	}
	if e.ec != "" {
		element(&b, "EC", e.ec)
		element(&b, "RecommendDoc", "https://api.aliyun.com/troubleshoot?q="+e.ec)
	}
	b.WriteString("</Error>\n")
	return b.Bytes()
}

func element(b *bytes.Buffer, name, value string) {
	b.WriteString("  <")
	b.WriteString(name)
	b.WriteByte('>')
	xml.EscapeText(b, []byte(value)) //nolint:errcheck // bytes.Buffer does not fail
	b.WriteString("</")
	b.WriteString(name)
	b.WriteString(">\n")
}

// reply is a response computed before it is written, so that counters and
// hooks see it before the client can.
type reply struct {
	status int
	header http.Header // extra headers
	body   []byte
	code   string    // error code, "" on success
	err    *apiError // set by handlers instead of the fields above
}

func failed(e *apiError) reply { return reply{err: e} }

func (s *Server) errorReply(e *apiError, method, requestID, hostID string) reply {
	body := errorBody(e, requestID, hostID)
	h := make(http.Header, 3)
	h.Set("Content-Type", "application/xml")
	if e.ec != "" {
		h.Set("x-oss-ec", e.ec)
	}
	if method == http.MethodHead {
		// A HEAD answer has no body: OSS puts the error document, base64
		// encoded, in x-oss-err, where the SDK reads it
		// (oss/client.go tryConvertServiceError, [CODE]).
		h.Set("x-oss-err", base64.StdEncoding.EncodeToString(body))
		body = nil
	}
	return reply{status: e.status, header: h, body: body, code: e.code}
}

func xmlReply(status int, v any) reply {
	out, err := xml.Marshal(v)
	if err != nil {
		return reply{status: http.StatusInternalServerError, code: CodeInternalError}
	}
	body := make([]byte, 0, len(xml.Header)+len(out))
	body = append(append(body, xml.Header...), out...)
	h := make(http.Header, 1)
	h.Set("Content-Type", "application/xml")
	return reply{status: status, header: h, body: body}
}

// ---- XML documents ----

// isoTime is the timestamp format of XML bodies, e.g. 2026-01-02T03:04:05.000Z.
const isoTime = "2006-01-02T15:04:05.000Z"

type xmlOwner struct {
	ID          string `xml:"ID"`
	DisplayName string `xml:"DisplayName"`
}

type xmlContents struct {
	Key          string `xml:"Key"`
	LastModified string `xml:"LastModified"`
	ETag         string `xml:"ETag"`
	Type         string `xml:"Type"`
	Size         int    `xml:"Size"`
	StorageClass string `xml:"StorageClass"`
}

type xmlCommonPrefix struct {
	Prefix string `xml:"Prefix"`
}

type xmlListV2 struct {
	XMLName               xml.Name          `xml:"ListBucketResult"`
	Name                  string            `xml:"Name"`
	Prefix                string            `xml:"Prefix"`
	StartAfter            *string           `xml:"StartAfter,omitempty"`
	ContinuationToken     *string           `xml:"ContinuationToken,omitempty"`
	MaxKeys               int               `xml:"MaxKeys"`
	Delimiter             *string           `xml:"Delimiter,omitempty"`
	EncodingType          *string           `xml:"EncodingType,omitempty"`
	IsTruncated           bool              `xml:"IsTruncated"`
	NextContinuationToken *string           `xml:"NextContinuationToken,omitempty"`
	KeyCount              int               `xml:"KeyCount"`
	Contents              []xmlContents     `xml:"Contents"`
	CommonPrefixes        []xmlCommonPrefix `xml:"CommonPrefixes"`
}

type xmlACL struct {
	Grant string `xml:"Grant"`
}

type xmlBucketInfo struct {
	XMLName xml.Name `xml:"BucketInfo"`
	Bucket  struct {
		Name               string   `xml:"Name"`
		Location           string   `xml:"Location"`
		CreationDate       string   `xml:"CreationDate"`
		ExtranetEndpoint   string   `xml:"ExtranetEndpoint"`
		IntranetEndpoint   string   `xml:"IntranetEndpoint"`
		StorageClass       string   `xml:"StorageClass"`
		DataRedundancyType string   `xml:"DataRedundancyType"`
		Versioning         string   `xml:"Versioning,omitempty"`
		Owner              xmlOwner `xml:"Owner"`
		AccessControlList  xmlACL   `xml:"AccessControlList"`
	} `xml:"Bucket"`
}

type xmlAccessControlPolicy struct {
	XMLName           xml.Name `xml:"AccessControlPolicy"`
	Owner             xmlOwner `xml:"Owner"`
	AccessControlList xmlACL   `xml:"AccessControlList"`
}

type xmlVersioning struct {
	XMLName xml.Name `xml:"VersioningConfiguration"`
	Status  string   `xml:"Status,omitempty"`
}

// xmlLifecycle is read only to validate a PutBucketLifecycle body; the body
// itself is stored and returned as sent.
type xmlLifecycle struct {
	XMLName xml.Name `xml:"LifecycleConfiguration"`
	Rules   []struct {
		ID     string `xml:"ID"`
		Status string `xml:"Status"`
	} `xml:"Rule"`
}

func formatTime(t time.Time) string { return t.UTC().Format(isoTime) }

func itoa(n int) string { return strconv.Itoa(n) }
