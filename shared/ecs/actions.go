package ecs

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/hbr-autoinstall/hbr-autoinstall/shared/fault"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/ident"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/openapi"
)

const (
	// MaxDescribeIDs is the most instance IDs one DescribeInstances call
	// takes (documented limit); DescribeInstances chunks longer lists.
	MaxDescribeIDs = 100
	// MaxAssistantIDs is the most InstanceId.N one
	// DescribeCloudAssistantStatus call takes (documented limit);
	// CloudAssistantReady chunks longer lists.
	MaxAssistantIDs = 50
	// MaxTokenLen bounds the NextToken ListInstancesPage accepts from its
	// caller (a continuation message carries it).
	MaxTokenLen = 1024
	// PageSize is the MaxResults asked of DescribeInstances (its maximum).
	PageSize = 100
	// MaxTagKeyLen and MaxTagValueLen are the documented limits of a tag,
	// in characters.
	MaxTagKeyLen   = 128
	MaxTagValueLen = 128

	// describePagesPerChunk bounds the pages of one chunk of IDs; a chunk
	// of at most PageSize IDs needs one.
	describePagesPerChunk = 5
)

// DescribeInstances returns the instances among ids that exist in the
// region, in the order of ids (duplicates dropped); unknown IDs are simply
// absent. It sends ceil(n/100) calls or more (following NextToken), none for
// an empty list. Errors: Invalid for a malformed ID (no call); Permanent if a
// chunk's listing does not end within a few pages; otherwise see the package
// comment.
func (c *Client) DescribeInstances(ctx context.Context, ids []string) ([]Instance, error) {
	const op = "ecs.DescribeInstances"
	ids, err := checkIDs(op, ids)
	if err != nil {
		return nil, err
	}
	found := make(map[string]Instance, len(ids))
	for chunk := range slices.Chunk(ids, MaxDescribeIDs) {
		list, err := json.Marshal(chunk)
		if err != nil {
			return nil, fault.Wrap(op, fault.Invalid, "", fmt.Errorf("encode instance IDs: %w", err))
		}
		got, err := c.describe(ctx, op, map[string]string{"InstanceIds": string(list)}, describePagesPerChunk)
		if err != nil {
			return nil, err
		}
		for _, in := range got {
			found[in.ID] = in
		}
	}
	out := make([]Instance, 0, len(found))
	for _, id := range ids {
		if in, ok := found[id]; ok {
			out = append(out, in)
		}
	}
	return out, nil
}

// ListInstances returns every instance of the region with the given status
// (one of the Status* constants; "" for all), following NextToken through
// pages of PageSize, however many there are. A sweep that must stop and
// resume uses ListInstancesPage instead. Errors carry Op
// "ecs.DescribeInstances", the action called: Invalid for an unknown status
// (no call); Permanent if the service hands back a token it already gave
// (the listing would never end); otherwise see the package comment.
func (c *Client) ListInstances(ctx context.Context, status string) ([]Instance, error) {
	var all []Instance
	seen := map[string]bool{}
	token := ""
	for {
		page, err := c.ListInstancesPage(ctx, status, token)
		if err != nil {
			return nil, err
		}
		all = append(all, page.Instances...)
		if page.NextToken == "" {
			return all, nil
		}
		if seen[page.NextToken] {
			return nil, fault.Wrap("ecs.DescribeInstances", fault.Permanent, "",
				fmt.Errorf("the listing does not advance: NextToken %q came back twice", clipToken(page.NextToken)))
		}
		seen[page.NextToken] = true
		token = page.NextToken
	}
}

// Page is one page of a listing.
type Page struct {
	Instances []Instance
	// NextToken continues the listing; "" after the last page.
	NextToken string
}

// ListInstancesPage returns one page of up to PageSize instances with the
// given status ("" for all), starting at token ("" for the first page). A
// page's NextToken may be kept (in a message) and passed back later to go
// on. Errors: Invalid for an unknown status or a token longer than
// MaxTokenLen or holding control characters (no call); an expired or
// foreign token is the service's InvalidParameter (Permanent); otherwise see
// the package comment.
func (c *Client) ListInstancesPage(ctx context.Context, status, token string) (Page, error) {
	const op = "ecs.DescribeInstances"
	query := map[string]string{"MaxResults": strconv.Itoa(PageSize)}
	switch status {
	case "":
	case StatusPending, StatusRunning, StatusStarting, StatusStopping, StatusStopped:
		query["Status"] = status
	default:
		return Page{}, fault.Invalidf(op, "status %q must be one of %s, %s, %s, %s, %s or empty",
			status, StatusPending, StatusRunning, StatusStarting, StatusStopping, StatusStopped)
	}
	if len(token) > MaxTokenLen || strings.ContainsFunc(token, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return Page{}, fault.Invalidf(op, "NextToken %q is not a token (at most %d printable characters)", clipToken(token), MaxTokenLen)
	}
	if token != "" {
		query["NextToken"] = token
	}
	ins, next, err := c.page(ctx, op, query)
	if err != nil {
		return Page{}, err
	}
	return Page{Instances: ins, NextToken: next}, nil
}

func clipToken(t string) string {
	if len(t) > 40 {
		return t[:40] + "…"
	}
	return t
}

// describe runs DescribeInstances with query, following NextToken for at
// most maxPages pages.
func (c *Client) describe(ctx context.Context, op string, query map[string]string, maxPages int) ([]Instance, error) {
	var all []Instance
	token := ""
	for range maxPages {
		q := map[string]string{"MaxResults": strconv.Itoa(PageSize)}
		for k, v := range query {
			q[k] = v
		}
		if token != "" {
			q["NextToken"] = token
		}
		got, next, err := c.page(ctx, op, q)
		if err != nil {
			return nil, err
		}
		all = append(all, got...)
		if token = next; token == "" {
			return all, nil
		}
	}
	return nil, fault.Wrap(op, fault.Permanent, "",
		fmt.Errorf("listing did not end within %d pages of %d instances", maxPages, PageSize))
}

// page makes one DescribeInstances call.
func (c *Client) page(ctx context.Context, op string, q map[string]string) ([]Instance, string, error) {
	body, requestID, err := c.api.Call(ctx, openapi.Request{Action: "DescribeInstances", Query: q})
	if err != nil {
		return nil, "", err
	}
	var out struct {
		Instances openapi.List[rawInstance] `json:"Instances"`
		NextToken openapi.String            `json:"NextToken"`
	}
	if err := openapi.Decode(op, requestID, body, &out); err != nil {
		return nil, "", err
	}
	all := make([]Instance, 0, len(out.Instances))
	for _, r := range out.Instances {
		all = append(all, r.instance())
	}
	return all, string(out.NextToken), nil
}

type rawInstance struct {
	InstanceID      string `json:"InstanceId"`
	InstanceName    string `json:"InstanceName"`
	Status          string `json:"Status"`
	OSType          string `json:"OSType"`
	ResourceGroupID string `json:"ResourceGroupId"`
	VpcAttributes   struct {
		VpcID string `json:"VpcId"`
	} `json:"VpcAttributes"`
	Tags openapi.List[struct {
		TagKey   string `json:"TagKey"`
		TagValue string `json:"TagValue"`
		Key      string `json:"Key"`
		Value    string `json:"Value"`
	}] `json:"Tags"`
}

func (r rawInstance) instance() Instance {
	in := Instance{
		ID:              r.InstanceID,
		Status:          r.Status,
		OSType:          r.OSType,
		VpcID:           r.VpcAttributes.VpcID,
		ResourceGroupID: r.ResourceGroupID,
		Name:            r.InstanceName,
	}
	for _, t := range r.Tags {
		key, value := t.TagKey, t.TagValue
		if key == "" {
			key, value = t.Key, t.Value
		}
		if key == "" {
			continue
		}
		if in.Tags == nil {
			in.Tags = make(map[string]string, len(r.Tags))
		}
		in.Tags[key] = value
	}
	return in
}

// TagInstance adds (or overwrites) the tag key=value on one instance with
// TagResources. Errors: Invalid for a malformed ID, an empty or over-long
// key, a key starting with "aliyun" or "acs:", or a key or value that is not
// UTF-8, over 128 characters or contains "http://" or "https://" (no call);
// otherwise see the package comment (an unknown instance is Permanent, Code
// "InvalidResourceId.NotFound" on the real service).
func (c *Client) TagInstance(ctx context.Context, id, key, value string) error {
	const op = "ecs.TagResources"
	if !ident.CloudID.Valid(id) {
		return fault.Invalidf(op, "instance ID %q must match %s", id, ident.CloudID)
	}
	if err := CheckTag(key, value); err != nil {
		return fault.Wrap(op, fault.Invalid, "", err)
	}
	_, _, err := c.api.Call(ctx, openapi.Request{Action: "TagResources", Query: map[string]string{
		"ResourceType": "instance",
		"ResourceId.1": id,
		"Tag.1.Key":    key,
		"Tag.1.Value":  value,
	}})
	return err
}

// CheckTag reports why key=value cannot be an ECS tag, or nil. The rules are
// the documented ones: a key of 1..128 characters not starting with "aliyun"
// or "acs:", a value of 0..128 characters, neither holding "http://" or
// "https://", both valid UTF-8.
func CheckTag(key, value string) error {
	switch {
	case key == "":
		return fmt.Errorf("tag key is empty")
	case !utf8.ValidString(key) || !utf8.ValidString(value):
		return fmt.Errorf("tag %q=%q is not valid UTF-8", key, value)
	case utf8.RuneCountInString(key) > MaxTagKeyLen:
		return fmt.Errorf("tag key is %d characters, over %d", utf8.RuneCountInString(key), MaxTagKeyLen)
	case utf8.RuneCountInString(value) > MaxTagValueLen:
		return fmt.Errorf("tag value is %d characters, over %d", utf8.RuneCountInString(value), MaxTagValueLen)
	case strings.HasPrefix(strings.ToLower(key), "aliyun"), strings.HasPrefix(strings.ToLower(key), "acs:"):
		return fmt.Errorf("tag key %q must not start with aliyun or acs:", key)
	case hasURL(key), hasURL(value):
		return fmt.Errorf("tag %q=%q must not contain http:// or https://", key, value)
	}
	return nil
}

func hasURL(s string) bool {
	s = strings.ToLower(s)
	return strings.Contains(s, "http://") || strings.Contains(s, "https://")
}

// CloudAssistantReady asks DescribeCloudAssistantStatus whether Cloud
// Assistant is running on each of ids (chunks of MaxAssistantIDs). The map
// has an entry for every instance the service reported: true when its
// CloudAssistantStatus is "true"; an instance the service did not report has
// no entry (unknown: not created yet, or gone), which callers must not read
// as "not ready". An empty list makes no call. Errors: Invalid for a malformed ID (no
// call); otherwise see the package comment.
func (c *Client) CloudAssistantReady(ctx context.Context, ids []string) (map[string]bool, error) {
	const op = "ecs.DescribeCloudAssistantStatus"
	ids, err := checkIDs(op, ids)
	if err != nil {
		return nil, err
	}
	// Only the instances the service answers for are in the map: one it
	// does not list (not created yet, or gone) is unknown, not "not ready".
	asked := make(map[string]bool, len(ids))
	for _, id := range ids {
		asked[id] = true
	}
	ready := make(map[string]bool, len(ids))
	for chunk := range slices.Chunk(ids, MaxAssistantIDs) {
		query := make(map[string]string, len(chunk))
		for i, id := range chunk {
			query["InstanceId."+strconv.Itoa(i+1)] = id
		}
		// With InstanceId.N the service answers every instance in one
		// page (PageSize "does not take effect"), so no paging here.
		body, requestID, err := c.api.Call(ctx, openapi.Request{Action: "DescribeCloudAssistantStatus", Query: query})
		if err != nil {
			return nil, err
		}
		var out struct {
			Set openapi.List[struct {
				InstanceID           string         `json:"InstanceId"`
				CloudAssistantStatus openapi.String `json:"CloudAssistantStatus"`
			}] `json:"InstanceCloudAssistantStatusSet"`
		}
		if err := openapi.Decode(op, requestID, body, &out); err != nil {
			return nil, err
		}
		for _, s := range out.Set {
			if asked[s.InstanceID] {
				ready[s.InstanceID] = strings.EqualFold(string(s.CloudAssistantStatus), "true")
			}
		}
	}
	return ready, nil
}

// checkIDs validates instance IDs and returns them without duplicates, in
// order.
func checkIDs(op string, ids []string) ([]string, error) {
	out := make([]string, 0, len(ids))
	seen := make(map[string]bool, len(ids))
	for _, id := range ids {
		if !ident.CloudID.Valid(id) {
			return nil, fault.Invalidf(op, "instance ID %q must match %s", id, ident.CloudID)
		}
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out, nil
}
