package provision

import (
	"context"
	"time"

	"github.com/hbr-autoinstall/hbr-autoinstall/shared/cloudauth"
)

// RAM API facts used here (RAM 2015-05-01, RPC style, one global endpoint).
const (
	// RAMEndpoint is RAM's public endpoint.
	RAMEndpoint = "ram.aliyuncs.com"
	// RAMVersion is the RAM API version.
	RAMVersion = "2015-05-01"
	// STSEndpoint is STS's public endpoint, used to look up the account id.
	STSEndpoint = "sts.aliyuncs.com"
	// STSVersion is the STS API version.
	STSVersion = "2015-04-01"
	// policyTypeCustom is the PolicyType of a policy created by the account.
	policyTypeCustom = "Custom"
	// rotateStrategy lets CreatePolicyVersion delete the oldest non-default
	// version when a policy already has the maximum of 5 versions.
	rotateStrategy = "DeleteOldestNonDefaultVersionWhenLimitExceeded"
)

// Role is a RAM role as GetRole and CreateRole describe it.
type Role struct {
	RoleName                 string
	Arn                      string
	AssumeRolePolicyDocument string
}

// Policy is a custom policy and the document of its default version.
type Policy struct {
	PolicyName     string
	DefaultVersion string
	Document       string
}

// AttachedPolicy is one policy attached to a role.
type AttachedPolicy struct {
	PolicyName string
	PolicyType string
}

// RAMClient calls the RAM API with the core SDK. It is safe for concurrent
// use. Every error is a *fault.Error (Op "ram.<Action>"); a missing role or
// policy also wraps [ErrNotFound].
type RAMClient struct {
	rpc *rpcClient
}

// NewRAMClient returns a RAM client. endpoint is a host (default
// [RAMEndpoint], called over HTTPS), an https URL, or an http URL on a
// loopback address (a local emulator). timeout bounds each call (default
// 15 s). It returns an Invalid error for missing credentials or a bad
// endpoint.
func NewRAMClient(creds cloudauth.Credentials, endpoint string, timeout time.Duration) (*RAMClient, error) {
	if endpoint == "" {
		endpoint = RAMEndpoint
	}
	rpc, err := newRPCClient("ram", RAMVersion, endpoint, creds, timeout)
	if err != nil {
		return nil, err
	}
	return &RAMClient{rpc: rpc}, nil
}

type roleResponse struct {
	Role struct {
		RoleName                 string `json:"RoleName"`
		Arn                      string `json:"Arn"`
		AssumeRolePolicyDocument string `json:"AssumeRolePolicyDocument"`
	} `json:"Role"`
}

func (r roleResponse) role() Role {
	return Role{RoleName: r.Role.RoleName, Arn: r.Role.Arn, AssumeRolePolicyDocument: r.Role.AssumeRolePolicyDocument}
}

// GetRole returns the role named name, or an error wrapping ErrNotFound.
func (c *RAMClient) GetRole(ctx context.Context, name string) (Role, error) {
	var out roleResponse
	if err := c.rpc.call(ctx, "GetRole", map[string]string{"RoleName": name}, &out); err != nil {
		return Role{}, err
	}
	return out.role(), nil
}

// CreateRole creates a role trusted as trustDoc says.
func (c *RAMClient) CreateRole(ctx context.Context, name, trustDoc, description string) (Role, error) {
	var out roleResponse
	err := c.rpc.call(ctx, "CreateRole", map[string]string{
		"RoleName":                 name,
		"AssumeRolePolicyDocument": trustDoc,
		"Description":              description,
	}, &out)
	if err != nil {
		return Role{}, err
	}
	return out.role(), nil
}

// UpdateRoleTrust replaces the trust policy of a role.
func (c *RAMClient) UpdateRoleTrust(ctx context.Context, name, trustDoc string) error {
	return c.rpc.call(ctx, "UpdateRole", map[string]string{
		"RoleName":                    name,
		"NewAssumeRolePolicyDocument": trustDoc,
	}, nil)
}

// GetPolicy returns a custom policy with its default version's document, or
// an error wrapping ErrNotFound.
func (c *RAMClient) GetPolicy(ctx context.Context, name string) (Policy, error) {
	var out struct {
		Policy struct {
			PolicyName     string `json:"PolicyName"`
			DefaultVersion string `json:"DefaultVersion"`
		} `json:"Policy"`
		DefaultPolicyVersion struct {
			VersionID      string `json:"VersionId"`
			PolicyDocument string `json:"PolicyDocument"`
		} `json:"DefaultPolicyVersion"`
	}
	err := c.rpc.call(ctx, "GetPolicy", map[string]string{"PolicyName": name, "PolicyType": policyTypeCustom}, &out)
	if err != nil {
		return Policy{}, err
	}
	version := out.DefaultPolicyVersion.VersionID
	if version == "" {
		version = out.Policy.DefaultVersion
	}
	return Policy{PolicyName: out.Policy.PolicyName, DefaultVersion: version, Document: out.DefaultPolicyVersion.PolicyDocument}, nil
}

// CreatePolicy creates a custom policy.
func (c *RAMClient) CreatePolicy(ctx context.Context, name, doc, description string) error {
	return c.rpc.call(ctx, "CreatePolicy", map[string]string{
		"PolicyName":     name,
		"PolicyDocument": doc,
		"Description":    description,
	}, nil)
}

// CreatePolicyVersion adds a version to a custom policy and makes it the
// default, deleting the oldest non-default version if the policy already has
// the maximum number of versions.
func (c *RAMClient) CreatePolicyVersion(ctx context.Context, name, doc string) error {
	return c.rpc.call(ctx, "CreatePolicyVersion", map[string]string{
		"PolicyName":     name,
		"PolicyDocument": doc,
		"SetAsDefault":   boolParam(true),
		"RotateStrategy": rotateStrategy,
	}, nil)
}

// ListPoliciesForRole lists the policies attached to a role.
func (c *RAMClient) ListPoliciesForRole(ctx context.Context, role string) ([]AttachedPolicy, error) {
	var out struct {
		Policies struct {
			Policy []struct {
				PolicyName string `json:"PolicyName"`
				PolicyType string `json:"PolicyType"`
			} `json:"Policy"`
		} `json:"Policies"`
	}
	if err := c.rpc.call(ctx, "ListPoliciesForRole", map[string]string{"RoleName": role}, &out); err != nil {
		return nil, err
	}
	list := make([]AttachedPolicy, 0, len(out.Policies.Policy))
	for _, p := range out.Policies.Policy {
		list = append(list, AttachedPolicy{PolicyName: p.PolicyName, PolicyType: p.PolicyType})
	}
	return list, nil
}

// AttachPolicyToRole attaches a custom policy to a role.
func (c *RAMClient) AttachPolicyToRole(ctx context.Context, policy, role string) error {
	return c.rpc.call(ctx, "AttachPolicyToRole", map[string]string{
		"PolicyType": policyTypeCustom,
		"PolicyName": policy,
		"RoleName":   role,
	}, nil)
}

// AccountID returns the id of the account that owns creds, from STS
// GetCallerIdentity. endpoint is as for [NewRAMClient] (default
// [STSEndpoint]). Errors are *fault.Error values with Op
// "sts.GetCallerIdentity".
func AccountID(ctx context.Context, creds cloudauth.Credentials, endpoint string, timeout time.Duration) (string, error) {
	if endpoint == "" {
		endpoint = STSEndpoint
	}
	rpc, err := newRPCClient("sts", STSVersion, endpoint, creds, timeout)
	if err != nil {
		return "", err
	}
	var out struct {
		AccountID string `json:"AccountId"`
	}
	if err := rpc.call(ctx, "GetCallerIdentity", nil, &out); err != nil {
		return "", err
	}
	return out.AccountID, nil
}
