package hbr

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/hbr-autoinstall/hbr-autoinstall/shared/fault"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/ident"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/openapi"
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
	// CreatedTime is when the client record was created (unix seconds; 0
	// when the service did not say).
	CreatedTime int64
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
	query := map[string]string{"InstanceIds": ids}
	if c.cfg.CrossAccountType != "" {
		query["CrossAccountType"] = c.cfg.CrossAccountType
	}
	if c.cfg.CrossAccountUserID != 0 {
		query["CrossAccountUserId"] = strconv.FormatInt(c.cfg.CrossAccountUserID, 10)
	}
	if c.cfg.CrossAccountRoleName != "" {
		query["CrossAccountRoleName"] = c.cfg.CrossAccountRoleName
	}
	body, requestID, err := c.api.Call(ctx, openapi.Request{Action: "InstallBackupClients", Query: query})
	if err != nil {
		return InstallResult{}, err
	}
	var out struct {
		TaskID           openapi.String `json:"TaskId"`
		InstanceStatuses openapi.List[struct {
			InstanceID    string       `json:"InstanceId"`
			ValidInstance openapi.Bool `json:"ValidInstance"`
			ErrorCode     string       `json:"ErrorCode"`
		}] `json:"InstanceStatuses"`
	}
	if err := openapi.Decode(op, requestID, body, &out); err != nil {
		return InstallResult{}, err
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
	if !ident.CloudID.Valid(taskID) {
		return Task{}, fault.Invalidf(op, "task ID %q must match %s", taskID, ident.CloudID)
	}
	body, requestID, err := c.api.Call(ctx, openapi.Request{Action: "DescribeTask", Query: map[string]string{"TaskId": taskID}})
	if err != nil {
		return Task{}, err
	}
	var out struct {
		Name          openapi.String  `json:"Name"`
		Description   openapi.String  `json:"Description"`
		Progress      openapi.Int     `json:"Progress"`
		Result        json.RawMessage `json:"Result"`
		CompletedTime openapi.Int     `json:"CompletedTime"`
	}
	if err := openapi.Decode(op, requestID, body, &out); err != nil {
		return Task{}, err
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
		body, requestID, err := c.api.Call(ctx, openapi.Request{
			Action: "DescribeBackupClients",
			Query: map[string]string{
				"ClientType": ecsClient,
				"PageNumber": strconv.Itoa(page),
				"PageSize":   strconv.Itoa(describePageSize),
			},
			Form: map[string]string{"InstanceIds": ids},
		})
		if err != nil {
			return nil, err
		}
		var out struct {
			Clients openapi.List[struct {
				ClientID   string      `json:"ClientId"`
				InstanceID string      `json:"InstanceId"`
				Status     string      `json:"Status"`
				Created    openapi.Int `json:"CreatedTime"`
			}] `json:"Clients"`
			TotalCount openapi.Int `json:"TotalCount"`
		}
		if err := openapi.Decode(op, requestID, body, &out); err != nil {
			return nil, err
		}
		for _, cl := range out.Clients {
			all = append(all, BackupClient{ClientID: cl.ClientID, InstanceID: cl.InstanceID, Status: cl.Status, CreatedTime: int64(cl.Created)})
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
		if !ident.CloudID.Valid(id) {
			return "", fault.Invalidf(op, "instance ID %q must match %s", id, ident.CloudID)
		}
	}
	data, err := json.Marshal(ids)
	if err != nil {
		return "", fault.Wrap(op, fault.Invalid, "", fmt.Errorf("encode instance IDs: %w", err))
	}
	return string(data), nil
}
