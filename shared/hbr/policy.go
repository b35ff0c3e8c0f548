package hbr

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/hbr-autoinstall/hbr-autoinstall/shared/fault"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/ident"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/openapi"
)

const (
	// SourceECSFile is the SourceType of ECS file-backup bindings, whose
	// DataSourceId is the instance ID.
	SourceECSFile = "ECS_FILE"
	// MaxBindIDs is the most instance IDs one CreatePolicyBindings call of
	// this adapter takes (no documented limit; callers batch).
	MaxBindIDs = 100
	// MaxBindingFilterIDs is the most instance IDs one DescribePolicyBindings
	// call of this adapter takes.
	MaxBindingFilterIDs = 100
	// bindingPageSize is the largest documented MaxResults.
	bindingPageSize = 100
	// maxBindingPages bounds pagination; MaxBindingFilterIDs instances need
	// one page unless an instance has many bindings.
	maxBindingPages = 10
)

// CodeAlreadyBound is the error code with which CreatePolicyBindings
// refuses a data source already bound to the policy of the call ([DOC]; see
// the package comment). The error is fault.Permanent; read the code with
// fault.CodeOf. It does not say which item of a longer list it is about.
const CodeAlreadyBound = "PolicyAlreadyBoundWithThisDataSource"

// ValidPolicyID reports whether id looks like a backup policy ID: "po-"
// followed by 1..61 letters or digits.
func ValidPolicyID(id string) bool {
	if len(id) < 4 || id[:3] != "po-" {
		return false
	}
	return ident.Rule{Min: 1, Max: 61, First: "A-Za-z0-9", Rest: "A-Za-z0-9"}.Valid(id[3:])
}

// CreatePolicyBindings binds 1..MaxBindIDs ECS instances to one backup
// policy, as ECS_FILE data sources, in one call. Errors: Invalid for a bad
// policy ID or ID list (no call); otherwise see the package comment. An
// instance already bound to this policy makes the call fail Permanent with
// Code CodeAlreadyBound ([DOC]); an unknown policy or an instance bound to
// another policy is Permanent with the service's code, which is not
// documented.
func (c *Client) CreatePolicyBindings(ctx context.Context, policyID string, instanceIDs []string) error {
	const op = "hbr.CreatePolicyBindings"
	if !ValidPolicyID(policyID) {
		return fault.Invalidf(op, "policy ID %q must be po- followed by letters or digits", policyID)
	}
	if _, err := idList(op, instanceIDs, MaxBindIDs); err != nil {
		return err
	}
	type item struct {
		SourceType           string `json:"SourceType"`
		DataSourceID         string `json:"DataSourceId"`
		CrossAccountType     string `json:"CrossAccountType,omitempty"`
		CrossAccountUserID   int64  `json:"CrossAccountUserId,omitempty"`
		CrossAccountRoleName string `json:"CrossAccountRoleName,omitempty"`
	}
	items := make([]item, 0, len(instanceIDs))
	for _, id := range instanceIDs {
		items = append(items, item{
			SourceType:           SourceECSFile,
			DataSourceID:         id,
			CrossAccountType:     c.cfg.CrossAccountType,
			CrossAccountUserID:   c.cfg.CrossAccountUserID,
			CrossAccountRoleName: c.cfg.CrossAccountRoleName,
		})
	}
	list, err := json.Marshal(items)
	if err != nil {
		return fault.Wrap(op, fault.Invalid, "", fmt.Errorf("encode binding list: %w", err))
	}
	_, _, err = c.api.Call(ctx, openapi.Request{
		Action: "CreatePolicyBindings",
		Query:  map[string]string{"PolicyBindingList": string(list)},
		Form:   map[string]string{"PolicyId": policyID},
	})
	return err
}

// DescribePolicyBindings returns the backup policy each of 1..100
// instances is bound to (instance ID → policy ID), following pages;
// instances without a binding are absent. When the service lists several
// bindings for an instance, the first listed wins. Errors: Invalid for a bad
// ID list (no call); Permanent if the listing does not end within a bounded
// number of pages; otherwise see the package comment.
func (c *Client) DescribePolicyBindings(ctx context.Context, instanceIDs []string) (map[string]string, error) {
	const op = "hbr.DescribePolicyBindings"
	ids, err := idList(op, instanceIDs, MaxBindingFilterIDs)
	if err != nil {
		return nil, err
	}
	wanted := make(map[string]bool, len(instanceIDs))
	for _, id := range instanceIDs {
		wanted[id] = true
	}
	out := map[string]string{}
	token := ""
	seen := map[string]bool{}
	for range maxBindingPages {
		form := map[string]string{"DataSourceIds": ids, "MaxResults": strconv.Itoa(bindingPageSize)}
		if token != "" {
			form["NextToken"] = token
		}
		body, requestID, err := c.api.Call(ctx, openapi.Request{Action: "DescribePolicyBindings", Form: form})
		if err != nil {
			return nil, err
		}
		var page struct {
			PolicyBindings openapi.List[struct {
				PolicyID     openapi.String `json:"PolicyId"`
				DataSourceID openapi.String `json:"DataSourceId"`
			}] `json:"PolicyBindings"`
			NextToken openapi.String `json:"NextToken"`
		}
		if err := openapi.Decode(op, requestID, body, &page); err != nil {
			return nil, err
		}
		for _, b := range page.PolicyBindings {
			id, policy := string(b.DataSourceID), string(b.PolicyID)
			if !wanted[id] || policy == "" {
				continue
			}
			if _, ok := out[id]; !ok {
				out[id] = policy
			}
		}
		token = string(page.NextToken)
		if token == "" || len(page.PolicyBindings) == 0 || seen[token] {
			return out, nil
		}
		seen[token] = true
	}
	return nil, fault.Wrap(op, fault.Permanent, "",
		fmt.Errorf("listing did not end within %d pages", maxBindingPages))
}
