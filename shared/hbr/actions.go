package hbr

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/hbr-autoinstall/hbr-autoinstall/shared/fault"
)

const (
	// MaxInstallIDs is the most instance IDs one InstallBackupClients call
	// takes (documented limit).
	MaxInstallIDs = 20
	// MaxDescribeIDs is the most instance IDs one DescribeBackupClients call
	// of this adapter takes.
	MaxDescribeIDs = 100
	// describePageSize is the largest PageSize HBR accepts.
	describePageSize = 99
	// maxDescribePages bounds pagination; a filter of MaxDescribeIDs
	// instances needs far fewer.
	maxDescribePages = 10
	// ecsClient is the ClientType of ECS file-backup clients.
	ecsClient = "ECS_CLIENT"
)

var idPattern = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,128}$`)

// InstallResult is the answer to InstallBackupClients.
type InstallResult struct {
	// TaskID is the install task to follow with DescribeTask; empty when no
	// instance was valid.
	TaskID    string
	RequestID string
	// Statuses has one entry per instance, as reported by the service.
	Statuses []InstanceStatus
}

// InstanceStatus is the service's verdict on one instance of an install call.
type InstanceStatus struct {
	InstanceID string
	// Valid reports whether a client can be installed (ValidInstance).
	Valid bool
	// ErrorCode is "" when valid, else e.g. "InstanceNotExists",
	// "InstanceNotRunning", "CloudAssistNotRunningOnInstance".
	ErrorCode string
}

// Task is the state of an HBR task.
type Task struct {
	TaskID, RequestID, Name string
	// Description holds the state: created|completed|expired|cancelled
	// (other values are tolerated and mean "not done").
	Description string
	// Progress is 0..100, or -1 when the task failed.
	Progress int
	// Results are the per-instance outcomes parsed from the Result string;
	// empty while the Result is "", "{}", "[]" or "null".
	Results []ClientResult
	// ResultUnparsed is set when Result was present but neither empty nor
	// a JSON array of client results; Results is then empty.
	ResultUnparsed bool
	// CompletedTime is in unix seconds, 0 if absent.
	CompletedTime int64
}

// Done reports whether the task has reached a final state: Description
// completed, expired or cancelled (any case), or Progress -1.
func (t Task) Done() bool {
	switch strings.ToLower(t.Description) {
	case "completed", "expired", "cancelled":
		return true
	}
	return t.Progress == -1
}

// ClientResult is one instance's outcome in an install task's Result.
type ClientResult struct {
	InstanceID   string `json:"instanceId"`
	ClientID     string `json:"clientId"`
	ClientStatus string `json:"clientStatus"` // ACTIVATED, INSTALL_FAILED, UNKNOWN, …
	ErrorCode    string `json:"errorCode"`
}

// BackupClient is an HBR client as listed by DescribeBackupClients.
type BackupClient struct {
	ClientID   string
	InstanceID string
	// Status is ACTIVATED, INSTALLING, INSTALL_FAILED, UNKNOWN, ….
	Status string
}

// InstallBackupClients starts installing backup clients on 1..20 ECS
// instances. The call creates an asynchronous task (TaskID) for the valid
// instances; invalid ones are reported in Statuses. Errors: Invalid for a bad
// ID list (no call); otherwise see the package comment.
func (c *Client) InstallBackupClients(ctx context.Context, instanceIDs []string) (InstallResult, error) {
	const op = "hbr.InstallBackupClients"
	ids, err := idList(op, instanceIDs, MaxInstallIDs)
	if err != nil {
		return InstallResult{}, err
	}
	req := c.newRequest("InstallBackupClients")
	req.QueryParams["InstanceIds"] = ids
	if c.cfg.CrossAccountType != "" {
		req.QueryParams["CrossAccountType"] = c.cfg.CrossAccountType
	}
	if c.cfg.CrossAccountUserID != 0 {
		req.QueryParams["CrossAccountUserId"] = strconv.FormatInt(c.cfg.CrossAccountUserID, 10)
	}
	if c.cfg.CrossAccountRoleName != "" {
		req.QueryParams["CrossAccountRoleName"] = c.cfg.CrossAccountRoleName
	}
	body, requestID, err := c.do(ctx, op, req)
	if err != nil {
		return InstallResult{}, err
	}
	var out struct {
		TaskID           flexString `json:"TaskId"`
		InstanceStatuses list[struct {
			InstanceID    string   `json:"InstanceId"`
			ValidInstance flexBool `json:"ValidInstance"`
			ErrorCode     string   `json:"ErrorCode"`
		}] `json:"InstanceStatuses"`
	}
	if err := json.Unmarshal(body, &out); err != nil {
		return InstallResult{}, decodeError(op, requestID, err)
	}
	res := InstallResult{TaskID: string(out.TaskID), RequestID: requestID}
	for _, s := range out.InstanceStatuses {
		res.Statuses = append(res.Statuses, InstanceStatus{InstanceID: s.InstanceID, Valid: bool(s.ValidInstance), ErrorCode: s.ErrorCode})
	}
	return res, nil
}

// DescribeTask returns the state of a task. Errors: Invalid for a malformed
// task ID (no call); otherwise see the package comment.
func (c *Client) DescribeTask(ctx context.Context, taskID string) (Task, error) {
	const op = "hbr.DescribeTask"
	if !idPattern.MatchString(taskID) {
		return Task{}, fault.Invalidf(op, "task ID %q must match %s", taskID, idPattern)
	}
	req := c.newRequest("DescribeTask")
	req.QueryParams["TaskId"] = taskID
	body, requestID, err := c.do(ctx, op, req)
	if err != nil {
		return Task{}, err
	}
	var out struct {
		Name          flexString      `json:"Name"`
		Description   flexString      `json:"Description"`
		Progress      flexInt         `json:"Progress"`
		Result        json.RawMessage `json:"Result"`
		CompletedTime flexInt         `json:"CompletedTime"`
	}
	if err := json.Unmarshal(body, &out); err != nil {
		return Task{}, decodeError(op, requestID, err)
	}
	t := Task{
		TaskID:        taskID,
		RequestID:     requestID,
		Name:          string(out.Name),
		Description:   string(out.Description),
		Progress:      int(out.Progress),
		CompletedTime: int64(out.CompletedTime),
	}
	t.Results, t.ResultUnparsed = parseResult(out.Result)
	return t, nil
}

// parseResult reads DescribeTask's Result: a JSON string holding "", "{}",
// "null" or a JSON array of client results. An array or object sent without
// the string wrapping is accepted too.
func parseResult(raw json.RawMessage) ([]ClientResult, bool) {
	text := bytes.TrimSpace(raw)
	var s string
	if json.Unmarshal(text, &s) == nil {
		text = bytes.TrimSpace([]byte(s))
	}
	switch string(text) {
	case "", "null", "{}", "[]", `""`:
		return nil, false
	}
	if text[0] != '[' {
		return nil, true
	}
	var results []ClientResult
	if err := json.Unmarshal(text, &results); err != nil {
		return nil, true
	}
	return results, false
}

// DescribeBackupClients lists the ECS backup clients of 1..100 instances,
// following pages. Errors: Invalid for a bad ID list (no call); Permanent if
// the listing does not end within a bounded number of pages; otherwise see
// the package comment.
func (c *Client) DescribeBackupClients(ctx context.Context, instanceIDs []string) ([]BackupClient, error) {
	const op = "hbr.DescribeBackupClients"
	ids, err := idList(op, instanceIDs, MaxDescribeIDs)
	if err != nil {
		return nil, err
	}
	var all []BackupClient
	for page := 1; page <= maxDescribePages; page++ {
		req := c.newRequest("DescribeBackupClients")
		req.QueryParams["ClientType"] = ecsClient
		req.QueryParams["PageNumber"] = strconv.Itoa(page)
		req.QueryParams["PageSize"] = strconv.Itoa(describePageSize)
		req.FormParams["InstanceIds"] = ids
		body, requestID, err := c.do(ctx, op, req)
		if err != nil {
			return nil, err
		}
		var out struct {
			Clients list[struct {
				ClientID   string `json:"ClientId"`
				InstanceID string `json:"InstanceId"`
				Status     string `json:"Status"`
			}] `json:"Clients"`
			TotalCount flexInt `json:"TotalCount"`
		}
		if err := json.Unmarshal(body, &out); err != nil {
			return nil, decodeError(op, requestID, err)
		}
		for _, cl := range out.Clients {
			all = append(all, BackupClient{ClientID: cl.ClientID, InstanceID: cl.InstanceID, Status: cl.Status})
		}
		total := int64(out.TotalCount)
		if len(out.Clients) < describePageSize || (total > 0 && int64(len(all)) >= total) {
			return all, nil
		}
	}
	return nil, fault.Wrap(op, fault.Permanent, "",
		fmt.Errorf("listing did not end within %d pages of %d clients", maxDescribePages, describePageSize))
}

// idList validates 1..max instance IDs and returns their JSON array text.
func idList(op string, ids []string, max int) (string, error) {
	if len(ids) == 0 || len(ids) > max {
		return "", fault.Invalidf(op, "need 1 to %d instance IDs, got %d", max, len(ids))
	}
	for _, id := range ids {
		if !idPattern.MatchString(id) {
			return "", fault.Invalidf(op, "instance ID %q must match %s", id, idPattern)
		}
	}
	data, err := json.Marshal(ids)
	if err != nil {
		return "", fault.Wrap(op, fault.Invalid, "", fmt.Errorf("encode instance IDs: %w", err))
	}
	return string(data), nil
}

func decodeError(op, requestID string, err error) error {
	return fault.Wrap(op, fault.Permanent, "",
		fmt.Errorf("decode response (RequestId %s): %w", requestID, err))
}

// flexString decodes a JSON string, or keeps the literal text of any other
// JSON value (a numeric Code, say); null is "".
type flexString string

func (f *flexString) UnmarshalJSON(b []byte) error {
	var s string
	switch {
	case string(b) == "null":
		*f = ""
	case json.Unmarshal(b, &s) == nil:
		*f = flexString(s)
	default:
		*f = flexString(bytes.TrimSpace(b))
	}
	return nil
}

// flexInt decodes a JSON number or a numeric string; null and "" are 0.
type flexInt int64

func (f *flexInt) UnmarshalJSON(b []byte) error {
	text := string(bytes.TrimSpace(b))
	if text == "null" {
		*f = 0
		return nil
	}
	var s string
	if json.Unmarshal(b, &s) == nil {
		text = strings.TrimSpace(s)
		if text == "" {
			*f = 0
			return nil
		}
	}
	if n, err := strconv.ParseInt(text, 10, 64); err == nil {
		*f = flexInt(n)
		return nil
	}
	x, err := strconv.ParseFloat(text, 64)
	if err != nil {
		return fmt.Errorf("%s is not a number", text)
	}
	*f = flexInt(int64(x))
	return nil
}

// flexBool decodes a JSON boolean or the strings "true"/"false".
type flexBool bool

func (f *flexBool) UnmarshalJSON(b []byte) error {
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	switch v := v.(type) {
	case bool:
		*f = flexBool(v)
	case string:
		*f = flexBool(strings.EqualFold(v, "true"))
	case nil:
		*f = false
	default:
		return fmt.Errorf("%s is not a boolean", b)
	}
	return nil
}

// list decodes a JSON array, or the RPC habit of wrapping one in an object
// ({"InstanceStatus": [...]}); null is empty.
type list[T any] []T

func (l *list[T]) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) == 0 || string(b) == "null" {
		*l = nil
		return nil
	}
	if b[0] == '{' {
		var wrapper map[string]json.RawMessage
		if err := json.Unmarshal(b, &wrapper); err != nil {
			return err
		}
		for _, inner := range wrapper {
			if inner = bytes.TrimSpace(inner); len(inner) > 0 && inner[0] == '[' {
				b = inner
				break
			}
		}
		if b[0] == '{' {
			*l = nil
			return nil
		}
	}
	var items []T
	if err := json.Unmarshal(b, &items); err != nil {
		return err
	}
	*l = items
	return nil
}
