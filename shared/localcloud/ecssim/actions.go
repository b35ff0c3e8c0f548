package ecssim

import (
	"encoding/base64"
	"encoding/json"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/hbr-autoinstall/hbr-autoinstall/shared/localcloud/rpcsim"
)

// creationLayout is the format of ECS CreationTime values.
const creationLayout = "2006-01-02T15:04Z"

// tokenPrefix marks the emulator's NextToken values: the prefix plus the
// base64 of the last instance ID returned (instances are listed by ID).
const tokenPrefix = "ecssim1."

func (s *Server) describeInstances(req rpcsim.Request) (map[string]any, *rpcsim.APIError) {
	p := req.Params
	region, apiErr := regionOf(p)
	if apiErr != nil {
		return nil, apiErr
	}
	var ids []string
	if raw, ok := p["InstanceIds"]; ok && raw != "" {
		if ids, apiErr = parseIDs(raw); apiErr != nil {
			return nil, apiErr
		}
	}
	status := p["Status"]
	switch status {
	case "", StatusPending, StatusRunning, StatusStarting, StatusStopping, StatusStopped:
	default:
		return nil, rpcsim.InvalidParameter("The specified parameter Status %q is not valid.", status)
	}
	_, tokenMode := p["NextToken"]
	if _, ok := p["MaxResults"]; ok {
		tokenMode = true
	}

	var (
		size, number int
		after        string
	)
	if tokenMode {
		if size, apiErr = intParam(p, "MaxResults", 10, 1, MaxPageSize); apiErr != nil {
			return nil, apiErr
		}
		if tok := p["NextToken"]; tok != "" {
			var ok bool
			if after, ok = decodeToken(tok); !ok {
				return nil, rpcsim.InvalidParameter("The specified parameter NextToken is not valid.")
			}
		}
	} else {
		if number, apiErr = intParam(p, "PageNumber", 1, 1, 1<<30); apiErr != nil {
			return nil, apiErr
		}
		if size, apiErr = intParam(p, "PageSize", 10, 1, MaxPageSize); apiErr != nil {
			return nil, apiErr
		}
	}

	// One pass over the IDs in order: count every match (TotalCount) but
	// copy only the page's, so a listing of n instances in pages costs
	// O(n) per page and no allocation beyond the page.
	s.mu.Lock()
	// Named IDs are looked up, not searched for: a call costs O(ids named),
	// whatever the size of the region.
	var sorted []string
	if ids != nil {
		sorted = s.lookupSortedLocked(ids)
	} else {
		sorted = s.sortedIDsLocked()
	}
	start := 0
	if after != "" {
		start, _ = slices.BinarySearch(sorted, after)
		if start < len(sorted) && sorted[start] == after {
			start++
		}
	}
	skip := 0
	if !tokenMode {
		skip = (number - 1) * size
	}
	total, before := 0, 0
	var page []Instance
	for i, id := range sorted {
		in := s.instances[id]
		switch {
		case in.RegionID != region,
			status != "" && in.Status != status,
			p["VpcId"] != "" && in.VpcID != p["VpcId"],
			p["ResourceGroupId"] != "" && in.ResourceGroupID != p["ResourceGroupId"]:
			continue
		}
		total++
		if i < start {
			before++
			continue
		}
		if total-before > skip && len(page) < size {
			c := *in
			c.Tags = maps.Clone(in.Tags)
			page = append(page, c)
		}
	}
	s.mu.Unlock()

	resp := map[string]any{"TotalCount": total}
	if tokenMode {
		next := ""
		if len(page) > 0 && before+len(page) < total {
			next = tokenPrefix + base64.RawURLEncoding.EncodeToString([]byte(page[len(page)-1].ID))
		}
		resp["MaxResults"], resp["NextToken"] = size, next
	} else {
		resp["PageNumber"], resp["PageSize"], resp["NextToken"] = number, size, ""
	}
	out := make([]map[string]any, 0, len(page))
	for _, in := range page {
		out = append(out, instanceJSON(in))
	}
	resp["Instances"] = map[string]any{"Instance": out}
	return resp, nil
}

func decodeToken(tok string) (string, bool) {
	rest, ok := strings.CutPrefix(tok, tokenPrefix)
	if !ok {
		return "", false
	}
	id, err := base64.RawURLEncoding.DecodeString(rest)
	return string(id), err == nil && len(id) > 0
}

// instanceJSON renders an instance as DescribeInstances does (a subset of
// the real fields).
func instanceJSON(in Instance) map[string]any {
	tags := make([]map[string]string, 0, len(in.Tags))
	for _, k := range slices.Sorted(maps.Keys(in.Tags)) {
		tags = append(tags, map[string]string{"TagKey": k, "TagValue": in.Tags[k]})
	}
	network := "vpc"
	if in.VpcID == "" {
		network = "classic"
	}
	return map[string]any{
		"InstanceId":          in.ID,
		"InstanceName":        in.Name,
		"HostName":            in.Name,
		"RegionId":            in.RegionID,
		"ZoneId":              in.RegionID + "-a",
		"Status":              in.Status,
		"OSType":              in.OSType,
		"InstanceType":        "ecs.g7.large",
		"InstanceNetworkType": network,
		"ResourceGroupId":     in.ResourceGroupID,
		"CreationTime":        in.Created.UTC().Format(creationLayout),
		"VpcAttributes": map[string]any{
			"VpcId":            in.VpcID,
			"VSwitchId":        "",
			"PrivateIpAddress": map[string]any{"IpAddress": []string{}},
		},
		"Tags": map[string]any{"Tag": tags},
	}
}

func (s *Server) tagResources(req rpcsim.Request) (map[string]any, *rpcsim.APIError) {
	p := req.Params
	region, apiErr := regionOf(p)
	if apiErr != nil {
		return nil, apiErr
	}
	switch rt, ok := p["ResourceType"]; {
	case !ok || rt == "":
		return nil, rpcsim.MissingParameter("ResourceType")
	case rt != "instance":
		return nil, rpcsim.Errorf(http.StatusNotFound, CodeResourceTypeNotFound,
			"The ResourceType provided does not exist in our records (the emulator supports instance only).")
	}
	ids := indexed(p, "ResourceId.%d")
	switch {
	case len(ids) == 0:
		return nil, rpcsim.MissingParameter("ResourceId.1")
	case len(ids) > MaxTagResources:
		return nil, rpcsim.InvalidParameter("The parameter ResourceId.N must list 1 to %d IDs, got %d.", MaxTagResources, len(ids))
	}
	keys := indexed(p, "Tag.%d.Key")
	if len(keys) == 0 {
		return nil, rpcsim.MissingParameter("Tag.1.Key")
	}
	if len(keys) > MaxTagsPerCall {
		return nil, rpcsim.InvalidParameter("The parameter Tag.N must list 1 to %d tags, got %d.", MaxTagsPerCall, len(keys))
	}
	tags := make(map[string]string, len(keys))
	for i, k := range keys {
		v := p["Tag."+strconv.Itoa(i+1)+".Value"]
		if apiErr := checkTag(k, v); apiErr != nil {
			return nil, apiErr
		}
		tags[k] = v
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	for _, id := range ids {
		if in := s.instances[id]; in == nil || in.RegionID != region {
			return nil, rpcsim.Errorf(http.StatusNotFound, CodeResourceNotFound,
				"The specified ResourceIds are not found in our records.")
		}
	}
	for _, id := range ids {
		merged := maps.Clone(s.instances[id].Tags)
		if merged == nil {
			merged = make(map[string]string, len(tags))
		}
		maps.Copy(merged, tags)
		if len(merged) > MaxTagsPerInstance {
			return nil, rpcsim.Errorf(http.StatusBadRequest, CodeTagCount,
				"The specified tags are beyond the permitted range: instance %s would have %d tags, at most %d are allowed.",
				id, len(merged), MaxTagsPerInstance)
		}
	}
	for _, id := range ids {
		in := s.instances[id]
		if in.Tags == nil {
			in.Tags = make(map[string]string, len(tags))
		}
		maps.Copy(in.Tags, tags)
	}
	return map[string]any{}, nil
}

// checkTag applies the documented tag rules.
func checkTag(key, value string) *rpcsim.APIError {
	lk, lv := strings.ToLower(key), strings.ToLower(value)
	switch {
	case key == "" || !utf8.ValidString(key) || utf8.RuneCountInString(key) > MaxTagLen ||
		strings.HasPrefix(lk, "aliyun") || strings.HasPrefix(lk, "acs:") ||
		strings.Contains(lk, "http://") || strings.Contains(lk, "https://"):
		return rpcsim.Errorf(http.StatusBadRequest, CodeTagKey,
			"The specified Tag.n.Key %q is not valid: 1 to %d characters, not starting with aliyun or acs:, without http:// or https://.", key, MaxTagLen)
	case !utf8.ValidString(value) || utf8.RuneCountInString(value) > MaxTagLen ||
		strings.Contains(lv, "http://") || strings.Contains(lv, "https://"):
		return rpcsim.Errorf(http.StatusBadRequest, CodeTagValue,
			"The specified Tag.n.Value %q is not valid: up to %d characters, without http:// or https://.", value, MaxTagLen)
	}
	return nil
}

func (s *Server) describeCloudAssistantStatus(req rpcsim.Request) (map[string]any, *rpcsim.APIError) {
	p := req.Params
	region, apiErr := regionOf(p)
	if apiErr != nil {
		return nil, apiErr
	}
	ids := indexed(p, "InstanceId.%d")
	if len(ids) > MaxAssistantIDs {
		return nil, rpcsim.InvalidParameter("The parameter InstanceId.N must list at most %d IDs, got %d.", MaxAssistantIDs, len(ids))
	}
	osType := p["OSType"]
	number, apiErr := intParam(p, "PageNumber", 1, 1, 1<<30)
	if apiErr != nil {
		return nil, apiErr
	}
	size, apiErr := intParam(p, "PageSize", 10, 1, MaxAssistantIDs)
	if apiErr != nil {
		return nil, apiErr
	}
	now := req.Time

	s.mu.Lock()
	// Named IDs are looked up (O(ids named)); without any, the region is
	// listed in order.
	var candidates []string
	if len(ids) > 0 {
		candidates = s.lookupSortedLocked(ids)
	} else {
		candidates = s.sortedIDsLocked()
	}
	var match []Instance
	for _, id := range candidates {
		in := s.instances[id]
		if in.RegionID != region || (osType != "" && !strings.EqualFold(osType, in.OSType)) {
			continue
		}
		match = append(match, *in)
	}
	s.mu.Unlock()

	page := match
	if len(ids) == 0 { // with InstanceId.N, PageSize does not apply
		page = nil
		if start := (number - 1) * size; start < len(match) {
			page = match[start:min(start+size, len(match))]
		}
	}
	set := make([]map[string]any, 0, len(page))
	for _, in := range page {
		ready := in.Status == StatusRunning && !in.NoAssistant && !now.Before(in.AssistantReadyAt)
		entry := map[string]any{
			"InstanceId":            in.ID,
			"CloudAssistantStatus":  strconv.FormatBool(ready),
			"CloudAssistantVersion": "",
			"OSType":                osName(in.OSType),
			"InvocationCount":       0,
			"ActiveTaskCount":       0,
			"LastInvokedTime":       "",
			"LastHeartbeatTime":     "",
			"SupportSessionManager": ready,
		}
		if ready {
			entry["CloudAssistantVersion"] = "2.2.3.857"
			entry["LastHeartbeatTime"] = now.UTC().Format(time.RFC3339)
		}
		set = append(set, entry)
	}
	return map[string]any{
		"TotalCount":                      len(match),
		"PageNumber":                      number,
		"PageSize":                        size,
		"NextToken":                       "",
		"InstanceCloudAssistantStatusSet": map[string]any{"InstanceCloudAssistantStatus": set},
	}, nil
}

// osName renders an OSType as DescribeCloudAssistantStatus does.
func osName(t string) string {
	if strings.EqualFold(t, "windows") {
		return "Windows"
	}
	return "Linux"
}

// regionOf returns the mandatory RegionId.
func regionOf(p map[string]string) (string, *rpcsim.APIError) {
	region := p["RegionId"]
	if region == "" {
		return "", rpcsim.MissingParameter("RegionId")
	}
	return region, nil
}

// parseIDs parses a JSON array of 1..MaxDescribeIDs non-empty strings.
func parseIDs(raw string) ([]string, *rpcsim.APIError) {
	var ids []string
	if err := json.Unmarshal([]byte(raw), &ids); err != nil {
		return nil, rpcsim.InvalidParameter("The parameter InstanceIds must be a JSON array of strings: %v.", err)
	}
	if len(ids) > MaxDescribeIDs {
		return nil, rpcsim.InvalidParameter("The parameter InstanceIds must list at most %d IDs, got %d.", MaxDescribeIDs, len(ids))
	}
	for i, id := range ids {
		if strings.TrimSpace(id) == "" {
			return nil, rpcsim.InvalidParameter("The parameter InstanceIds must list non-empty strings; item %d is empty.", i)
		}
	}
	if ids == nil {
		ids = []string{}
	}
	return ids, nil
}

// indexed collects the values of a repeated parameter ("ResourceId.%d" →
// ResourceId.1, ResourceId.2, …) up to the first index that is absent.
func indexed(p map[string]string, pattern string) []string {
	var out []string
	for i := 1; ; i++ {
		v, ok := p[strings.Replace(pattern, "%d", strconv.Itoa(i), 1)]
		if !ok {
			return out
		}
		out = append(out, v)
	}
}

func intParam(p map[string]string, name string, def, lo, hi int) (int, *rpcsim.APIError) {
	raw, ok := p[name]
	if !ok || raw == "" {
		return def, nil
	}
	n, err := strconv.Atoi(raw)
	if err != nil || n < lo || n > hi {
		return 0, rpcsim.InvalidParameter("The parameter %s must be an integer from %d to %d, got %q.", name, lo, hi, raw)
	}
	return n, nil
}
