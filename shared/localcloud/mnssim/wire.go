package mnssim

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
)

// apiError is an MNS error response (sdk-notes §3.6; statuses from the MNS
// error-code table).
type apiError struct {
	status  int
	code    string
	message string
}

func invalidArgument(msg string) *apiError {
	return &apiError{http.StatusBadRequest, "InvalidArgument", msg}
}

func errMalformedXML(detail string) *apiError {
	return &apiError{http.StatusBadRequest, "MalformedXML", "The XML you provided was not well-formed: " + detail}
}

var (
	errQueueNotExistAPI   = &apiError{http.StatusNotFound, "QueueNotExist", "The queue name you provided is not exist."}
	errMessageNotExistAPI = &apiError{http.StatusNotFound, "MessageNotExist", "Message not exist."}
	errReceiptHandleAPI   = &apiError{http.StatusBadRequest, "ReceiptHandleError", "The receipt handle you provide is not valid."}
)

// toAPIError maps an in-process sentinel to the service's error.
func toAPIError(err error) *apiError {
	var ae *argError
	switch {
	case errors.As(err, &ae):
		return invalidArgument(ae.msg)
	case errors.Is(err, ErrQueueNotExist):
		return errQueueNotExistAPI
	case errors.Is(err, ErrMessageNotExist):
		return errMessageNotExistAPI
	case errors.Is(err, ErrReceiptHandle):
		return errReceiptHandleAPI
	case errors.Is(err, ErrClosed):
		return &apiError{http.StatusServiceUnavailable, "ServiceUnavailable", "The service is shutting down."}
	default:
		return &apiError{http.StatusInternalServerError, "InternalError", "Interal error."}
	}
}

// reqCtx carries one HTTP exchange.
type reqCtx struct {
	w     http.ResponseWriter
	r     *http.Request
	reqID string
	body  []byte
	query url.Values
	// principal names the caller ("" for the single key pair).
	principal string
}

type xmlError struct {
	XMLName   xml.Name `xml:"http://mns.aliyuncs.com/doc/v1/ Error"`
	Code      string   `xml:"Code"`
	Message   string   `xml:"Message"`
	RequestID string   `xml:"RequestId"`
	HostID    string   `xml:"HostId"`
}

func (rc *reqCtx) fail(e *apiError) {
	rc.writeXML(e.status, xmlError{
		Code:      e.code,
		Message:   e.message,
		RequestID: rc.reqID,
		HostID:    "http://" + rc.r.Host,
	})
}

func (rc *reqCtx) writeXML(status int, v any) {
	out, err := xml.Marshal(v)
	if err != nil {
		http.Error(rc.w, "marshal response: "+err.Error(), http.StatusInternalServerError)
		return
	}
	rc.w.Header().Set("Content-Type", "text/xml;charset=utf-8")
	rc.w.WriteHeader(status)
	_, _ = rc.w.Write([]byte(xml.Header[:len(xml.Header)-1]))
	_, _ = rc.w.Write(out)
}

func (rc *reqCtx) noContent() { rc.w.WriteHeader(http.StatusNoContent) }

// rootElement returns the local name of the first element of an XML body.
func rootElement(body []byte) string {
	d := xml.NewDecoder(bytes.NewReader(body))
	for {
		tok, err := d.Token()
		if err != nil {
			return ""
		}
		if se, ok := tok.(xml.StartElement); ok {
			return se.Name.Local
		}
	}
}

// ---- SendMessage / BatchSendMessage ----

type xmlSendEntry struct {
	MessageBody  *string `xml:"MessageBody"`
	DelaySeconds *string `xml:"DelaySeconds"`
	Priority     *string `xml:"Priority"`
}

type xmlSendMessage struct {
	XMLName xml.Name `xml:"Message"`
	xmlSendEntry
}

type xmlBatchSend struct {
	XMLName  xml.Name       `xml:"Messages"`
	Messages []xmlSendEntry `xml:"Message"`
}

// toEntry converts a wire message; a missing DelaySeconds means the queue's,
// a missing Priority means 8.
func (x xmlSendEntry) toEntry() (entry, string) {
	if x.MessageBody == nil {
		return entry{}, "The XML you provided did not validate against our published schema, cause by MessageBody."
	}
	e := entry{body: *x.MessageBody, delay: -1, priority: DefaultPriority}
	if x.DelaySeconds != nil {
		n, err := strconv.Atoi(strings.TrimSpace(*x.DelaySeconds))
		if err != nil || n < 0 {
			return entry{}, fmt.Sprintf("The value of DelaySeconds should between 0 and %d seconds.", MaxDelaySeconds)
		}
		e.delay = n
	}
	if x.Priority != nil {
		n, err := strconv.Atoi(strings.TrimSpace(*x.Priority))
		if err != nil {
			return entry{}, "The value of Priority should between 1 and 16"
		}
		e.priority = n
	}
	return e, ""
}

type xmlSendResult struct {
	XMLName        xml.Name `xml:"http://mns.aliyuncs.com/doc/v1/ Message"`
	MessageID      string   `xml:"MessageId"`
	MessageBodyMD5 string   `xml:"MessageBodyMD5"`
	ReceiptHandle  string   `xml:"ReceiptHandle,omitempty"`
}

type xmlBatchEntry struct {
	ErrorCode      string `xml:"ErrorCode,omitempty"`
	ErrorMessage   string `xml:"ErrorMessage,omitempty"`
	MessageID      string `xml:"MessageId,omitempty"`
	MessageBodyMD5 string `xml:"MessageBodyMD5,omitempty"`
	ReceiptHandle  string `xml:"ReceiptHandle,omitempty"`
}

type xmlBatchResult struct {
	XMLName  xml.Name        `xml:"http://mns.aliyuncs.com/doc/v1/ Messages"`
	Messages []xmlBatchEntry `xml:"Message"`
}

// handleOf returns the receipt handle a send reply carries: only delayed
// messages get one.
func handleOf(m Message) string {
	if m.DelaySeconds > 0 {
		return m.ReceiptHandle
	}
	return ""
}

func (s *Server) httpSend(rc *reqCtx, qname string) {
	var in xmlSendMessage
	if err := xml.Unmarshal(rc.body, &in); err != nil {
		rc.fail(errMalformedXML(err.Error()))
		return
	}
	e, msg := in.toEntry()
	if msg != "" {
		rc.fail(invalidArgument(msg))
		return
	}
	s.mu.Lock()
	if fail, status := s.failSendLocked(); fail {
		s.mu.Unlock()
		rc.fail(injected(status))
		return
	}
	q, ok := s.queues[qname]
	if !ok {
		s.mu.Unlock()
		rc.fail(errQueueNotExistAPI)
		return
	}
	if msg := validateEntry(e, q.attrs.MaximumMessageSize); msg != "" {
		s.mu.Unlock()
		rc.fail(invalidArgument(msg))
		return
	}
	e.principal = rc.principal
	m := s.enqueueLocked(q, e)
	hooks := s.hooks
	s.mu.Unlock()
	runHooks(hooks, []Message{m})
	rc.writeXML(http.StatusCreated, xmlSendResult{
		MessageID:      m.ID,
		MessageBodyMD5: m.BodyMD5,
		ReceiptHandle:  handleOf(m),
	})
}

func injected(status int) *apiError {
	if status == http.StatusServiceUnavailable {
		return &apiError{status, "ServiceUnavailable", "The service is temporarily unavailable."}
	}
	return &apiError{http.StatusInternalServerError, "InternalError", "Interal error."}
}

// httpBatchSend stores the valid entries of a batch. Structural problems
// (count, total size, XML) fail the whole request; an invalid entry fails
// alone and the reply is HTTP 500 with per-entry results (the real status of
// a partial failure is [UNVERIFIED]).
func (s *Server) httpBatchSend(rc *reqCtx, qname string) {
	var in xmlBatchSend
	if err := xml.Unmarshal(rc.body, &in); err != nil {
		rc.fail(errMalformedXML(err.Error()))
		return
	}
	if n := len(in.Messages); n < 1 || n > MaxBatch {
		rc.fail(invalidArgument(fmt.Sprintf("The count of messages should between 1 and %d, but it is %d.", MaxBatch, n)))
		return
	}
	total := 0
	for _, m := range in.Messages {
		if m.MessageBody != nil {
			total += len(*m.MessageBody)
		}
	}
	if total > MaxBodyBytes {
		rc.fail(invalidArgument(fmt.Sprintf("The total size of the messages should not exceed %d bytes, but it is %d bytes.", MaxBodyBytes, total)))
		return
	}
	s.mu.Lock()
	if fail, status := s.failSendLocked(); fail {
		s.mu.Unlock()
		rc.fail(injected(status))
		return
	}
	q, ok := s.queues[qname]
	if !ok {
		s.mu.Unlock()
		rc.fail(errQueueNotExistAPI)
		return
	}
	out := xmlBatchResult{Messages: make([]xmlBatchEntry, len(in.Messages))}
	var accepted []Message
	failed := false
	for i, x := range in.Messages {
		e, msg := x.toEntry()
		if msg == "" {
			msg = validateEntry(e, q.attrs.MaximumMessageSize)
		}
		if msg != "" {
			failed = true
			out.Messages[i] = xmlBatchEntry{ErrorCode: "InvalidArgument", ErrorMessage: msg}
			continue
		}
		e.principal = rc.principal
		m := s.enqueueLocked(q, e)
		accepted = append(accepted, m)
		out.Messages[i] = xmlBatchEntry{MessageID: m.ID, MessageBodyMD5: m.BodyMD5, ReceiptHandle: handleOf(m)}
	}
	hooks := s.hooks
	s.mu.Unlock()
	runHooks(hooks, accepted)
	status := http.StatusCreated
	if failed {
		status = http.StatusInternalServerError
	}
	rc.writeXML(status, out)
}

// ---- ReceiveMessage / BatchReceiveMessage / Peek ----

type xmlReceived struct {
	MessageID        string `xml:"MessageId"`
	ReceiptHandle    string `xml:"ReceiptHandle,omitempty"`
	MessageBodyMD5   string `xml:"MessageBodyMD5"`
	MessageBody      string `xml:"MessageBody"`
	EnqueueTime      int64  `xml:"EnqueueTime"`
	NextVisibleTime  int64  `xml:"NextVisibleTime"`
	FirstDequeueTime int64  `xml:"FirstDequeueTime"`
	DequeueCount     int    `xml:"DequeueCount"`
	Priority         int    `xml:"Priority"`
}

type xmlReceiveOne struct {
	XMLName xml.Name `xml:"http://mns.aliyuncs.com/doc/v1/ Message"`
	xmlReceived
}

type xmlReceiveBatch struct {
	XMLName  xml.Name      `xml:"http://mns.aliyuncs.com/doc/v1/ Messages"`
	Messages []xmlReceived `xml:"Message"`
}

func toReceived(m Message) xmlReceived {
	x := xmlReceived{
		MessageID:       m.ID,
		ReceiptHandle:   m.ReceiptHandle,
		MessageBodyMD5:  m.BodyMD5,
		MessageBody:     m.Body,
		EnqueueTime:     m.EnqueueTime.UnixMilli(),
		NextVisibleTime: m.VisibleAt.UnixMilli(),
		DequeueCount:    m.DequeueCount,
		Priority:        m.Priority,
	}
	if !m.FirstDequeueTime.IsZero() {
		x.FirstDequeueTime = m.FirstDequeueTime.UnixMilli()
	}
	return x
}

// intParam parses an optional integer query parameter within [lo, hi].
func intParam(q url.Values, name string, lo, hi, def int) (int, *apiError) {
	if !q.Has(name) {
		return def, nil
	}
	n, err := strconv.Atoi(q.Get(name))
	if err != nil || n < lo || n > hi {
		return 0, invalidArgument(fmt.Sprintf("The value of %s should between %d and %d.", name, lo, hi))
	}
	return n, nil
}

func (s *Server) httpReceive(rc *reqCtx, qname string) {
	batch := rc.query.Has("numOfMessages")
	peek := rc.query.Get("peekonly") == "true"
	n, aerr := intParam(rc.query, "numOfMessages", 1, MaxBatch, 1)
	if aerr != nil {
		rc.fail(aerr)
		return
	}
	attrs, err := s.Attributes(qname)
	if err != nil {
		rc.fail(toAPIError(err))
		return
	}
	wait, aerr := intParam(rc.query, "waitseconds", 0, MaxWaitSeconds, attrs.PollingWaitSeconds)
	if aerr != nil {
		rc.fail(aerr)
		return
	}
	var msgs []Message
	if peek {
		msgs, err = s.Peek(qname, n)
	} else {
		msgs, err = s.Receive(rc.r.Context(), qname, n, 0, secondsDuration(wait))
	}
	if err != nil {
		if rc.r.Context().Err() != nil {
			return // the client went away
		}
		rc.fail(toAPIError(err))
		return
	}
	if len(msgs) == 0 {
		rc.fail(errMessageNotExistAPI)
		return
	}
	if !batch {
		rc.writeXML(http.StatusOK, xmlReceiveOne{xmlReceived: toReceived(msgs[0])})
		return
	}
	out := xmlReceiveBatch{}
	for _, m := range msgs {
		out.Messages = append(out.Messages, toReceived(m))
	}
	rc.writeXML(http.StatusOK, out)
}

// ---- DeleteMessage / BatchDeleteMessage / ChangeMessageVisibility ----

func (s *Server) httpDelete(rc *reqCtx, qname string) {
	h := rc.query.Get("ReceiptHandle")
	if h == "" {
		rc.fail(&apiError{http.StatusBadRequest, "MissingReceiptHandle", "ReceiptHandle is required."})
		return
	}
	if err := s.Delete(qname, h); err != nil {
		rc.fail(toAPIError(err))
		return
	}
	rc.noContent()
}

type xmlReceiptHandles struct {
	XMLName xml.Name `xml:"ReceiptHandles"`
	Handles []string `xml:"ReceiptHandle"`
}

type xmlDeleteError struct {
	ErrorCode     string `xml:"ErrorCode"`
	ErrorMessage  string `xml:"ErrorMessage"`
	ReceiptHandle string `xml:"ReceiptHandle"`
}

type xmlDeleteErrors struct {
	XMLName xml.Name         `xml:"http://mns.aliyuncs.com/doc/v1/ Errors"`
	Errors  []xmlDeleteError `xml:"Error"`
}

// httpBatchDelete deletes each handle; failures are listed in an <Errors>
// reply with HTTP 404 (the real status is [UNVERIFIED]).
func (s *Server) httpBatchDelete(rc *reqCtx, qname string) {
	var in xmlReceiptHandles
	if len(bytes.TrimSpace(rc.body)) == 0 {
		rc.fail(&apiError{http.StatusBadRequest, "MissingReceiptHandle", "ReceiptHandle is required."})
		return
	}
	if err := xml.Unmarshal(rc.body, &in); err != nil {
		rc.fail(errMalformedXML(err.Error()))
		return
	}
	if n := len(in.Handles); n < 1 || n > MaxBatch {
		rc.fail(invalidArgument(fmt.Sprintf("The count of receipt handles should between 1 and %d, but it is %d.", MaxBatch, n)))
		return
	}
	if _, err := s.Attributes(qname); err != nil {
		rc.fail(toAPIError(err))
		return
	}
	var out xmlDeleteErrors
	for _, h := range in.Handles {
		if err := s.Delete(qname, h); err != nil {
			ae := toAPIError(err)
			out.Errors = append(out.Errors, xmlDeleteError{ErrorCode: ae.code, ErrorMessage: ae.message, ReceiptHandle: h})
		}
	}
	if len(out.Errors) > 0 {
		rc.writeXML(http.StatusNotFound, out)
		return
	}
	rc.noContent()
}

type xmlChangeVisibility struct {
	XMLName         xml.Name `xml:"http://mns.aliyuncs.com/doc/v1/ ChangeVisibility"`
	ReceiptHandle   string   `xml:"ReceiptHandle"`
	NextVisibleTime int64    `xml:"NextVisibleTime"`
}

func (s *Server) httpChangeVisibility(rc *reqCtx, qname string) {
	h := rc.query.Get("ReceiptHandle")
	if h == "" {
		rc.fail(&apiError{http.StatusBadRequest, "MissingReceiptHandle", "ReceiptHandle is required."})
		return
	}
	if !rc.query.Has("VisibilityTimeout") {
		rc.fail(&apiError{http.StatusBadRequest, "MissingVisibilityTimeout", "VisibilityTimeout is required."})
		return
	}
	vt, aerr := intParam(rc.query, "VisibilityTimeout", 1, MaxVisibility, 0)
	if aerr != nil {
		rc.fail(aerr)
		return
	}
	m, err := s.ChangeVisibility(qname, h, secondsDuration(vt))
	if err != nil {
		rc.fail(toAPIError(err))
		return
	}
	rc.writeXML(http.StatusOK, xmlChangeVisibility{ReceiptHandle: m.ReceiptHandle, NextVisibleTime: m.VisibleAt.UnixMilli()})
}

// ---- Queue management ----

type xmlQueueRequest struct {
	XMLName                xml.Name `xml:"Queue"`
	DelaySeconds           *int     `xml:"DelaySeconds"`
	MaximumMessageSize     *int     `xml:"MaximumMessageSize"`
	MessageRetentionPeriod *int     `xml:"MessageRetentionPeriod"`
	VisibilityTimeout      *int     `xml:"VisibilityTimeout"`
	PollingWaitSeconds     *int     `xml:"PollingWaitSeconds"`
	LoggingEnabled         *bool    `xml:"LoggingEnabled"`
}

// apply overlays the attributes present in the request onto a.
func (x xmlQueueRequest) apply(a QueueAttributes) QueueAttributes {
	set := func(dst *int, v *int) {
		if v != nil {
			*dst = *v
		}
	}
	set(&a.DelaySeconds, x.DelaySeconds)
	set(&a.MaximumMessageSize, x.MaximumMessageSize)
	set(&a.MessageRetentionPeriod, x.MessageRetentionPeriod)
	set(&a.VisibilityTimeout, x.VisibilityTimeout)
	set(&a.PollingWaitSeconds, x.PollingWaitSeconds)
	if x.LoggingEnabled != nil {
		a.LoggingEnabled = *x.LoggingEnabled
	}
	return a
}

func parseQueueRequest(body []byte) (xmlQueueRequest, *apiError) {
	var in xmlQueueRequest
	if len(bytes.TrimSpace(body)) == 0 {
		return in, nil
	}
	if err := xml.Unmarshal(body, &in); err != nil {
		return in, errMalformedXML(err.Error())
	}
	return in, nil
}

// httpCreateQueue answers 201 when it creates the queue, 204 when it exists
// with the same attributes and 409 QueueAlreadyExist when they differ.
func (s *Server) httpCreateQueue(rc *reqCtx, qname string) {
	if aerr := checkQueueName(qname); aerr != nil {
		rc.fail(aerr)
		return
	}
	in, aerr := parseQueueRequest(rc.body)
	if aerr != nil {
		rc.fail(aerr)
		return
	}
	attrs := in.apply(DefaultQueueAttributes())
	if msg := attrs.validate(); msg != "" {
		rc.fail(invalidArgument(msg))
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if q, ok := s.queues[qname]; ok {
		if q.attrs == attrs {
			rc.noContent()
			return
		}
		rc.fail(&apiError{http.StatusConflict, "QueueAlreadyExist", "The queue you want to create is already exist."})
		return
	}
	s.createQueueLocked(qname, attrs)
	rc.w.Header().Set("Location", "http://"+rc.r.Host+"/queues/"+qname)
	rc.w.WriteHeader(http.StatusCreated)
}

func (s *Server) httpSetQueueAttributes(rc *reqCtx, qname string) {
	in, aerr := parseQueueRequest(rc.body)
	if aerr != nil {
		rc.fail(aerr)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	q, ok := s.queues[qname]
	if !ok {
		rc.fail(errQueueNotExistAPI)
		return
	}
	attrs := in.apply(q.attrs)
	if msg := attrs.validate(); msg != "" {
		rc.fail(invalidArgument(msg))
		return
	}
	q.attrs = attrs
	q.modified = s.now()
	s.broadcastLocked()
	rc.noContent()
}

type xmlQueueAttributes struct {
	XMLName                xml.Name `xml:"http://mns.aliyuncs.com/doc/v1/ Queue"`
	QueueName              string   `xml:"QueueName"`
	CreateTime             int64    `xml:"CreateTime"`
	LastModifyTime         int64    `xml:"LastModifyTime"`
	DelaySeconds           int      `xml:"DelaySeconds"`
	MaximumMessageSize     int      `xml:"MaximumMessageSize"`
	MessageRetentionPeriod int      `xml:"MessageRetentionPeriod"`
	VisibilityTimeout      int      `xml:"VisibilityTimeout"`
	PollingWaitSeconds     int      `xml:"PollingWaitSeconds"`
	ActiveMessages         int      `xml:"ActiveMessages"`
	InactiveMessages       int      `xml:"InactiveMessages"`
	DelayMessages          int      `xml:"DelayMessages"`
	LoggingEnabled         bool     `xml:"LoggingEnabled"`
}

func (s *Server) httpGetQueueAttributes(rc *reqCtx, qname string) {
	visible, delayed, inflight := s.Depth(qname)
	s.mu.Lock()
	q, ok := s.queues[qname]
	var out xmlQueueAttributes
	if ok {
		out = xmlQueueAttributes{
			QueueName:              q.name,
			CreateTime:             q.created.Unix(),
			LastModifyTime:         q.modified.Unix(),
			DelaySeconds:           q.attrs.DelaySeconds,
			MaximumMessageSize:     q.attrs.MaximumMessageSize,
			MessageRetentionPeriod: q.attrs.MessageRetentionPeriod,
			VisibilityTimeout:      q.attrs.VisibilityTimeout,
			PollingWaitSeconds:     q.attrs.PollingWaitSeconds,
			ActiveMessages:         visible,
			InactiveMessages:       inflight,
			DelayMessages:          delayed,
			LoggingEnabled:         q.attrs.LoggingEnabled,
		}
	}
	s.mu.Unlock()
	if !ok {
		rc.fail(errQueueNotExistAPI)
		return
	}
	rc.writeXML(http.StatusOK, out)
}

// httpDeleteQueue answers 204 whether or not the queue existed.
func (s *Server) httpDeleteQueue(rc *reqCtx, qname string) {
	s.mu.Lock()
	delete(s.queues, qname)
	s.broadcastLocked()
	s.mu.Unlock()
	rc.noContent()
}

type xmlQueueList struct {
	XMLName xml.Name `xml:"http://mns.aliyuncs.com/doc/v1/ Queues"`
	Queues  []struct {
		QueueURL string `xml:"QueueURL"`
	} `xml:"Queue"`
}

// httpListQueues lists queue URLs, honouring x-mns-prefix (no paging).
func (s *Server) httpListQueues(rc *reqCtx, _ string) {
	prefix := rc.r.Header.Get("x-mns-prefix")
	s.mu.Lock()
	var names []string
	for n := range s.queues {
		if strings.HasPrefix(n, prefix) {
			names = append(names, n)
		}
	}
	s.mu.Unlock()
	sort.Strings(names)
	var out xmlQueueList
	for _, n := range names {
		out.Queues = append(out.Queues, struct {
			QueueURL string `xml:"QueueURL"`
		}{"http://" + rc.r.Host + "/queues/" + n})
	}
	rc.writeXML(http.StatusOK, out)
}
