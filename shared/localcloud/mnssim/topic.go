package mnssim

import (
	"encoding/xml"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"
)

// Topic limits and errors.
const (
	// MaxMessageTagLen is the longest MessageTag accepted, in characters.
	// [UNVERIFIED] the limit documented for subscription filter tags; the
	// PublishMessage page states none.
	MaxMessageTagLen = 16
)

// ErrTopicNotExist: no topic with that name (in-process API).
var ErrTopicNotExist = errors.New("mnssim: topic does not exist")

var errTopicNotExistAPI = &apiError{http.StatusNotFound, "TopicNotExist", "The topic you provided does not exist."}

// TopicMessage is a message published to a topic, as stored by the emulator.
// Topics have no subscribers here: messages are kept for inspection
// (Published) and handed to OnPublish hooks.
type TopicMessage struct {
	ID          string
	Topic       string
	Body        string // exactly as sent on the wire
	BodyMD5     string // upper-case hex MD5 of Body, as MNS reports it
	Tag         string // MessageTag, "" if none
	PublishTime time.Time
	// Principal names who published it over HTTP ("" for the
	// Options.AccessKeyID pair, an unauthenticated server, or Publish).
	Principal string
}

// topics is the topic half of the Server's state, guarded by Server.mu.
type topics struct {
	byName map[string][]TopicMessage
	hooks  []func(TopicMessage)
	faults Faults
}

func newTopics() *topics { return &topics{byName: make(map[string][]TopicMessage)} }

// topicResource returns the index in path where a "/topics" resource starts
// (sdk-notes §3.2 option 2 puts a dotted prefix before it), or -1.
func topicResource(path string) int { return strings.Index(path, "/topics") }

// CreateTopic creates a topic. It does nothing if the topic exists.
func (s *Server) CreateTopic(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.topics.byName[name]; !ok {
		s.topics.byName[name] = []TopicMessage{}
	}
}

// Published returns copies of the messages published to a topic, oldest
// first (nil for an unknown topic).
func (s *Server) Published(topic string) []TopicMessage {
	s.mu.Lock()
	defer s.mu.Unlock()
	msgs, ok := s.topics.byName[topic]
	if !ok {
		return nil
	}
	return append([]TopicMessage{}, msgs...)
}

// OnPublish registers a hook called, in registration order, after each
// message is published. Hooks run on the publisher's goroutine without the
// server's lock held; they must not block for long.
func (s *Server) OnPublish(hook func(TopicMessage)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.topics.hooks = append(s.topics.hooks, hook)
}

// SetTopicFaults injects failures into PublishMessage requests, as Faults
// does for sends: a failed publish stores nothing and answers HTTP 500
// InternalError, or 503 ServiceUnavailable when Status is 503.
func (s *Server) SetTopicFaults(f Faults) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.topics.faults = f
}

// Publish publishes a message in-process (no HTTP, not counted in Calls).
// It returns ErrTopicNotExist for an unknown topic and an error matching
// ErrInvalidArgument for a body outside 1..MaxBodyBytes bytes or an
// over-long tag.
func (s *Server) Publish(topic, body, tag string) (TopicMessage, error) {
	if msg := validatePublish(body, tag); msg != "" {
		return TopicMessage{}, &argError{msg}
	}
	s.mu.Lock()
	if _, ok := s.topics.byName[topic]; !ok {
		s.mu.Unlock()
		return TopicMessage{}, ErrTopicNotExist
	}
	m := s.publishLocked(topic, body, tag, "")
	hooks := s.topics.hooks
	s.mu.Unlock()
	for _, h := range hooks {
		h(m)
	}
	return m, nil
}

func validatePublish(body, tag string) string {
	switch {
	case len(body) == 0 || len(body) > MaxBodyBytes:
		return fmt.Sprintf("The value of MessageBody should between 1 and %d bytes, but it is %d bytes.", MaxBodyBytes, len(body))
	case utf8.RuneCountInString(tag) > MaxMessageTagLen:
		return fmt.Sprintf("The length of MessageTag should not exceed %d characters.", MaxMessageTagLen)
	}
	return ""
}

func (s *Server) publishLocked(topic, body, tag, principal string) TopicMessage {
	now := s.now()
	m := TopicMessage{
		ID:          s.newIDLocked(now),
		Topic:       topic,
		Body:        body,
		BodyMD5:     bodyMD5(body),
		Tag:         tag,
		PublishTime: now,
		Principal:   principal,
	}
	s.topics.byName[topic] = append(s.topics.byName[topic], m)
	return m
}

// failPublishLocked decides whether an injected fault hits this publish.
func (s *Server) failPublishLocked() (bool, int) {
	f := &s.topics.faults
	status := http.StatusInternalServerError
	if f.Status == http.StatusServiceUnavailable {
		status = f.Status
	}
	if f.SendFailNext > 0 {
		f.SendFailNext--
		return true, status
	}
	if f.SendFailRate > 0 && s.rng.Float64() < f.SendFailRate {
		return true, status
	}
	return false, 0
}

type xmlPublish struct {
	XMLName     xml.Name `xml:"Message"`
	MessageBody *string  `xml:"MessageBody"`
	MessageTag  string   `xml:"MessageTag"`
}

// httpPublish serves POST /topics/{topic}/messages (PublishMessage).
func (s *Server) httpPublish(rc *reqCtx, topic string) {
	var in xmlPublish
	if err := xml.Unmarshal(rc.body, &in); err != nil {
		rc.fail(errMalformedXML(err.Error()))
		return
	}
	if in.MessageBody == nil {
		rc.fail(invalidArgument("The XML you provided did not validate against our published schema, cause by MessageBody."))
		return
	}
	if msg := validatePublish(*in.MessageBody, in.MessageTag); msg != "" {
		rc.fail(invalidArgument(msg))
		return
	}
	s.mu.Lock()
	if fail, status := s.failPublishLocked(); fail {
		s.mu.Unlock()
		rc.fail(injected(status))
		return
	}
	if _, ok := s.topics.byName[topic]; !ok {
		s.mu.Unlock()
		rc.fail(errTopicNotExistAPI)
		return
	}
	m := s.publishLocked(topic, *in.MessageBody, in.MessageTag, rc.principal)
	hooks := s.topics.hooks
	s.mu.Unlock()
	for _, h := range hooks {
		h(m)
	}
	rc.writeXML(http.StatusCreated, xmlSendResult{MessageID: m.ID, MessageBodyMD5: m.BodyMD5})
}
