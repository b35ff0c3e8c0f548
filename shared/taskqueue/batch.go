package taskqueue

import (
	"context"
	"errors"
	"fmt"
	"strings"

	ali_mns "github.com/aliyun/aliyun-mns-go-sdk"

	"github.com/hbr-autoinstall/hbr-autoinstall/shared/fault"
)

// EntryError is one message of a batch that was not sent.
type EntryError struct {
	Index   int    // position in the slice given to SendBatch
	Code    string // MNS error code; "" if the request got no usable answer or was not attempted
	Message string
}

// BatchError lists the messages of a SendBatch that were not sent; the others
// were. It sits inside the *fault.Error that SendBatch returns (errors.As).
type BatchError struct {
	Queue  string
	Total  int          // messages given to SendBatch
	Failed []EntryError // in index order
	Err    error        // the request failure that stopped the batch, if any
}

// Error implements error.
func (e *BatchError) Error() string {
	idx := make([]string, 0, len(e.Failed))
	for _, f := range e.Failed {
		idx = append(idx, fmt.Sprint(f.Index))
	}
	msg := fmt.Sprintf("%d of %d messages not sent (indexes %s)", len(e.Failed), e.Total, strings.Join(idx, ","))
	if e.Err != nil {
		return msg + ": " + e.Err.Error()
	}
	msg = "queue " + e.Queue + ": " + msg
	if len(e.Failed) > 0 {
		f := e.Failed[0]
		msg += fmt.Sprintf(": first: %s %s", f.Code, f.Message)
	}
	return msg
}

// Unwrap returns the request failure that stopped the batch, if any.
func (e *BatchError) Unwrap() error { return e.Err }

// retryableEntryCode reports whether a per-entry batch error code may succeed
// when sent again. The batch reply carries codes as data, with no SDK error
// value per entry, so the code itself is the only thing to go by.
func retryableEntryCode(code string) bool {
	switch code {
	case "QpsLimitExceeded", "InternalError", "InternalServerError", "ServiceUnavailable":
		return true
	}
	return false
}

// SendBatch sends msgs in requests of at most 16 messages and 64 KiB of
// encoded bodies, in order, and returns their message IDs in the same order.
//
// A message that is empty or too large fails the whole call with fault.Invalid
// before anything is sent. Otherwise, on failure the returned slice still has
// len(msgs) entries, "" for each message not sent, and the error (a
// *fault.Error around a *BatchError) names them. Entries the service rejected
// one by one do not stop later requests; a request that fails as a whole
// stops the batch, and the rest are reported as not sent. The error is
// Retryable if any message failed retryably.
func (s *Sender) SendBatch(ctx context.Context, msgs []Message) ([]string, error) {
	if len(msgs) == 0 {
		return nil, nil
	}
	reqs := make([]ali_mns.MessageSendRequest, len(msgs))
	for i, m := range msgs {
		r, err := s.encode(m)
		if err != nil {
			return nil, fault.Wrap(opBatch, fault.Invalid, "", fmt.Errorf("queue %s: message %d: %w", s.cfg.Queue, i, err))
		}
		reqs[i] = r
	}
	ids := make([]string, len(msgs))
	berr := &BatchError{Queue: s.cfg.Queue, Total: len(msgs)}
	kind := fault.Permanent
	code := ""
	for _, c := range chunks(reqs) {
		resp, err := s.sendChunk(ctx, reqs[c.lo:c.hi])
		if err == nil {
			for i, e := range resp.Messages {
				if c.lo+i < c.hi {
					ids[c.lo+i] = e.MessageId
				}
			}
			continue
		}
		if resp != nil { // per-entry failures: record them and go on
			for i := c.lo; i < c.hi; i++ {
				var e ali_mns.BatchMessageSendEntry
				if i-c.lo < len(resp.Messages) {
					e = resp.Messages[i-c.lo]
				}
				if e.MessageId != "" && e.ErrorCode == "" {
					ids[i] = e.MessageId
					continue
				}
				berr.Failed = append(berr.Failed, EntryError{Index: i, Code: e.ErrorCode, Message: e.ErrorMessage})
				if e.ErrorCode == "" || retryableEntryCode(e.ErrorCode) {
					kind = fault.Retryable
				}
				if code == "" {
					code = e.ErrorCode
				}
			}
			continue
		}
		// The request failed as a whole: it and everything after it unsent.
		// Kind and code go on the outer error; keep the cause without its
		// classification wrapper so the message does not repeat itself.
		berr.Err = err
		var fe *fault.Error
		if errors.As(err, &fe) {
			berr.Err = fe.Err
		}
		if fault.KindOf(err) == fault.Retryable {
			kind = fault.Retryable
		}
		if cd := fault.CodeOf(err); cd != "" {
			code = cd
		}
		for i := c.lo; i < len(msgs); i++ {
			berr.Failed = append(berr.Failed, EntryError{Index: i, Code: fault.CodeOf(err), Message: "not sent: the request failed"})
		}
		break
	}
	if len(berr.Failed) == 0 {
		return ids, nil
	}
	return ids, fault.Wrap(opBatch, kind, code, berr)
}

type span struct{ lo, hi int }

// chunks splits reqs into spans of at most MaxBatch messages and MaxBodyBytes
// of bodies.
func chunks(reqs []ali_mns.MessageSendRequest) []span {
	var out []span
	lo, size := 0, 0
	for i, r := range reqs {
		n := len(r.MessageBody)
		if i > lo && (i-lo == MaxBatch || size+n > MaxBodyBytes) {
			out = append(out, span{lo, i})
			lo, size = i, 0
		}
		size += n
	}
	return append(out, span{lo, len(reqs)})
}

// sendChunk sends one batch request. It returns (resp, nil) on success,
// (resp, err) when the service rejected some entries (resp says which), and
// (nil, err) when the request failed as a whole; err is a *fault.Error.
func (s *Sender) sendChunk(ctx context.Context, reqs []ali_mns.MessageSendRequest) (*ali_mns.BatchMessageSendResponse, error) {
	var (
		resp    ali_mns.BatchMessageSendResponse
		partial bool
	)
	err := s.do(ctx, opBatch, func(c ali_mns.MNSClient) error {
		var berr error
		resp, berr = ali_mns.NewMNSQueue(s.cfg.Queue, c).BatchSendMessage(reqs...)
		partial = ali_mns.ERR_MNS_BATCH_OP_FAIL.IsEqual(berr)
		return berr
	})
	switch {
	case err == nil:
		return &resp, nil
	case fault.IsContext(err):
		// do gave up waiting: the call may still be running and writing
		// resp and partial, so read neither.
		return nil, err
	case partial:
		return &resp, err
	default:
		return nil, err
	}
}
