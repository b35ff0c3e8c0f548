// Package config reads the functions' configuration once, from environment
// variables, into a typed and validated struct. Load returns an Invalid error
// (package fault) naming every variable that is wrong, so a misconfigured
// deployment fails at its first invocation with a message that says what to fix.
//
// Every variable is listed by [Variables]; the README's configuration table and
// the s.yaml consistency check are built from that list.
package config

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hbr-autoinstall/hbr-autoinstall/shared/ecs"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/fault"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/ident"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/protect"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/scope"
)

// Config is everything the install and poller functions read from their
// environment.
type Config struct {
	// Region is the function's region (FC_REGION): the default region of
	// events, and the region of the queue.
	Region string
	// AccountID is the Alibaba Cloud account id (FC_ACCOUNT_ID), used to build
	// the default MNS endpoint.
	AccountID string
	// QueueName is the MNS queue that carries job messages (poll, bind and
	// sweep steps): the poller's trigger queue.
	QueueName string
	// InstallQueueName is the MNS queue that carries install work (sweep
	// announcements, readiness retries, reinstalls): the install
	// function's queue trigger.
	InstallQueueName string
	// LedgerBucket, LedgerPrefix and OSSEndpoint locate the instance
	// ledger: an OSS bucket (not versioned) in the function's region, the
	// key prefix of its entries, and the OSS endpoint.
	LedgerBucket, LedgerPrefix, OSSEndpoint string
	// LedgerLease is how long a ledger claim or task holds an instance
	// without progress before another announcement may take it over.
	LedgerLease time.Duration
	// DLQName is the dead-letter queue (same endpoint): the poller sends
	// there, with the reason, a message it cannot act on.
	DLQName string
	// MNSEndpoint is the MNS endpoint URL.
	MNSEndpoint string
	// HBREndpoint is the HBR endpoint: a host, a host with a {region}
	// placeholder, or an https URL (http only for loopback emulators).
	HBREndpoint string
	// APITimeout bounds each cloud API call.
	APITimeout time.Duration
	// FirstPollDelay is the wait between InstallBackupClients and the first
	// DescribeTask (the HBR docs say 60 s).
	FirstPollDelay time.Duration
	// PollInterval is the wait between DescribeTask calls (HBR docs: 30 s).
	PollInterval time.Duration
	// TaskTimeout is HBR's install task timeout (15 min).
	TaskTimeout time.Duration
	// DeadlineMargin is added to TaskTimeout to get a job's hard deadline.
	DeadlineMargin time.Duration
	// ReadinessTimeout is how long an instance may stay "not ready" after it
	// was first seen before it ends as NOT_READY.
	ReadinessTimeout time.Duration
	// ReadinessDelay is the first wait before retrying a not-ready instance.
	ReadinessDelay time.Duration
	// ReadinessDelayStep is added to the wait at each further retry.
	ReadinessDelayStep time.Duration
	// MaxInstallAttempts bounds install tasks per instance (first + retries).
	MaxInstallAttempts int
	// RetryBaseDelay and RetryMaxDelay bound the back-off after transient
	// errors (throttling, 5xx, network).
	RetryBaseDelay, RetryMaxDelay time.Duration
	// CoalesceDelay, when positive, makes the install function put the
	// instances an event says are ready on the install queue for that long
	// instead of installing them at once, so that instances announced one
	// by one share InstallBackupClients calls; 0 (the default) installs
	// them in the invocation that received the event.
	CoalesceDelay time.Duration
	// ReinstallStatuses are the operator-set client statuses (STOPPED,
	// DEACTIVATED, UNINSTALLING, UNINSTALL_FAILED) installed over anyway;
	// empty by default: such an instance ends as SKIPPED naming the status.
	ReinstallStatuses map[string]bool
	// MessagePriority is the MNS priority of job messages (1..16).
	MessagePriority int
	// CrossAccountType, CrossAccountUserID and CrossAccountRoleName are passed
	// to InstallBackupClients for cross-account backup.
	CrossAccountType     string
	CrossAccountUserID   int64
	CrossAccountRoleName string
	// LogLevel is debug, info, warn or error.
	LogLevel string
	// Mode is ModeEnforce or ModeAudit (no install, no tag write; outcomes
	// say what would have happened).
	Mode string
	// Scope are the include/exclude rules, evaluated at install time.
	Scope scope.Rules
	// ECSEndpoint is the ECS endpoint (same forms as HBREndpoint).
	ECSEndpoint string
	// OutcomeTagKey, when set, is the tag written on each instance with its
	// outcome (enforce mode only).
	OutcomeTagKey string
	// OutcomeTopic, when set, is the MNS topic outcome records are published
	// to; NotifyAll publishes every outcome instead of the problems only.
	OutcomeTopic string
	NotifyAll    bool
	// ReconcileRate bounds how many instances a reconcile sweep hands to
	// the poller per minute; ReconcileMax bounds the instances one sweep
	// lists.
	ReconcileRate, ReconcileMax int
	// Protect says which backup policy each instance is bound to once its
	// client is ACTIVATED (BACKUP_POLICY_ID, BACKUP_POLICY_BY_TAG); the zero
	// value (nothing set) binds nothing. Pass it to protect.Service.
	Protect protect.Settings
}

// Modes.
const (
	ModeEnforce = "enforce"
	ModeAudit   = "audit"
)

// Audit reports whether the functions only report what they would do.
func (c Config) Audit() bool { return c.Mode == ModeAudit }

// NeedsECS reports whether the configuration makes the functions call ECS
// (tag-based backup policies need the instances' tags).
func (c Config) NeedsECS() bool {
	return c.Audit() || !c.Scope.Empty() || c.OutcomeTagKey != "" || c.Protect.NeedsTags()
}

// Binds reports whether instances are bound to a backup policy.
func (c Config) Binds() bool { return c.Protect.Enabled() }

// Variable documents one environment variable.
type Variable struct {
	Name     string
	Default  string
	Required bool
	// Platform is true for variables Function Compute sets itself.
	Platform bool
	Doc      string
}

// Variables lists every environment variable the functions read.
func Variables() []Variable {
	return []Variable{
		{Name: "FC_REGION", Required: true, Platform: true, Doc: "Region of the function (set by Function Compute). Default region of events; region of the queue."},
		{Name: "FC_ACCOUNT_ID", Platform: true, Doc: "Account id (set by Function Compute). Needed to derive MNS_ENDPOINT when it is not set."},
		{Name: "QUEUE_NAME", Required: true, Doc: "MNS queue that carries job messages (poll, bind and sweep steps): the poller's trigger queue."},
		{Name: "INSTALL_QUEUE_NAME", Default: "hbr-autoinstall-installs", Doc: "MNS queue that carries install work (instances a sweep found, readiness retries, reinstalls after a failed attempt): the install function's queue trigger."},
		{Name: "LEDGER_BUCKET", Default: "hbr-autoinstall-ledger-${FC_ACCOUNT_ID}-${FC_REGION}", Doc: "OSS bucket of the instance ledger, in the function's region, NOT versioned (conditional creates are ignored on a versioned bucket); make provision creates it."},
		{Name: "LEDGER_PREFIX", Default: "hbr-autoinstall/ledger/", Doc: "Key prefix of the ledger's entries in the bucket (the RAM policy grants the object actions on this prefix only); ends with /."},
		{Name: "OSS_ENDPOINT", Default: "oss-{region}.aliyuncs.com", Doc: "OSS endpoint of the ledger: a host, a host with {region}, or an https URL (oss-{region}-internal.aliyuncs.com inside a VPC). Always HTTPS (http only for loopback emulators)."},
		{Name: "LEDGER_LEASE", Default: "auto", Doc: "How long a ledger claim, or its latest install task, holds an instance without progress before another announcement (or the reconcile sweep) takes it over. auto = READINESS_TIMEOUT + TASK_TIMEOUT + DEADLINE_MARGIN + 5m; a duration must be at least the first three together."},
		{Name: "DLQ_NAME", Default: "hbr-autoinstall-dlq", Doc: "MNS dead-letter queue (same endpoint as the job queue): the poller sends a message it cannot act on there itself, with the reason."},
		{Name: "MNS_ENDPOINT", Default: "https://${FC_ACCOUNT_ID}.mns.${FC_REGION}.aliyuncs.com", Doc: "MNS endpoint. Use https://<account>.mns.<region>-internal.aliyuncs.com inside a VPC. http:// is accepted only for loopback emulators."},
		{Name: "HBR_ENDPOINT", Default: "hbr.{region}.aliyuncs.com", Doc: "HBR endpoint: a host, a host with a {region} placeholder (hbr-vpc.{region}.aliyuncs.com), or an https URL. Always called over HTTPS (http only for loopback emulators)."},
		{Name: "API_TIMEOUT", Default: "10s", Doc: "Timeout of each HBR or MNS call."},
		{Name: "FIRST_POLL_DELAY", Default: "60s", Doc: "Wait between InstallBackupClients and the first DescribeTask (HBR docs: 60 s)."},
		{Name: "POLL_INTERVAL", Default: "30s", Doc: "Wait between DescribeTask calls (HBR docs: 30 s)."},
		{Name: "TASK_TIMEOUT", Default: "15m", Doc: "HBR install task timeout."},
		{Name: "DEADLINE_MARGIN", Default: "2m", Doc: "Added to TASK_TIMEOUT to get a job's hard polling deadline; past it the instance ends as TIMEOUT."},
		{Name: "READINESS_TIMEOUT", Default: "10m", Doc: "How long an instance may stay not ready (not running, Cloud Assistant down) after it was first seen; then NOT_READY."},
		{Name: "READINESS_DELAY", Default: "30s", Doc: "First wait before retrying a not-ready instance."},
		{Name: "READINESS_DELAY_STEP", Default: "0s", Doc: "Added to the wait at each further readiness retry. Retries (and back-offs) are due on a grid of READINESS_DELAY common to every job, so the jobs of one instance meet in one poller batch and merge; a step above 0 lengthens the waits and they meet less often."},
		{Name: "MAX_INSTALL_ATTEMPTS", Default: "2", Doc: "Install tasks per instance in all (first + reinstalls after INSTALL_FAILED/DEACTIVATED/UNKNOWN), 1..10."},
		{Name: "RETRY_BASE_DELAY", Default: "5s", Doc: "First back-off after a transient error (throttling, 5xx, network); doubles each time."},
		{Name: "RETRY_MAX_DELAY", Default: "2m", Doc: "Largest back-off after transient errors."},
		{Name: "INSTALL_COALESCE_DELAY", Default: "0s", Doc: "0 installs an instance an event says is ready in the invocation that received the event. Above 0, such instances wait this long on the install queue so that instances announced one by one share InstallBackupClients calls (instances not ready yet always wait on the queue, on a common 30 s grid, and share calls there)."},
		{Name: "REINSTALL_STATUSES", Doc: "Comma-separated client statuses an operator sets (STOPPED, DEACTIVATED, UNINSTALLING, UNINSTALL_FAILED) that are installed over anyway. Empty: such an instance ends as SKIPPED naming the status."},
		{Name: "MESSAGE_PRIORITY", Default: "8", Doc: "MNS priority of job messages, 1 (highest) to 16."},
		{Name: "CROSS_ACCOUNT_TYPE", Doc: "SELF_ACCOUNT or CROSS_ACCOUNT, passed to InstallBackupClients; empty to omit."},
		{Name: "CROSS_ACCOUNT_USER_ID", Doc: "Source account id for cross-account backup (required with CROSS_ACCOUNT)."},
		{Name: "CROSS_ACCOUNT_ROLE_NAME", Doc: "RAM role in the source account for cross-account backup (required with CROSS_ACCOUNT)."},
		{Name: "LOG_LEVEL", Default: "info", Doc: "debug, info, warn or error."},
		{Name: "MODE", Default: "enforce", Doc: "enforce installs; audit runs everything (scope rules, existing-client check, readiness) but installs nothing and writes no tag: outcomes say WOULD_INSTALL instead."},
		{Name: "INCLUDE_TAGS", Doc: "Comma-separated tag terms an instance must all match to be in scope: key=value, key (present), key!=value. Empty: every instance."},
		{Name: "EXCLUDE_TAGS", Doc: "Comma-separated tag terms; an instance matching any of them is SKIPPED, naming the term."},
		{Name: "RESOURCE_GROUPS", Doc: "Comma-separated resource group ids; when set, instances in other groups are SKIPPED."},
		{Name: "VPCS", Doc: "Comma-separated VPC ids; when set, instances in other VPCs are SKIPPED."},
		{Name: "ECS_ENDPOINT", Default: "ecs.{region}.aliyuncs.com", Doc: "ECS endpoint (scope rules, audit readiness, outcome tags, reconcile): a host, a host with {region}, or an https URL."},
		{Name: "OUTCOME_TAG_KEY", Doc: "When set, each instance gets this tag with its outcome (installed, already-installed, failed:<code>, skipped:<rule>, not-ready, timeout, cancelled). Not in audit mode."},
		{Name: "OUTCOME_TOPIC", Doc: "When set, outcome records are published to this MNS topic (same endpoint as the queue) for alerts."},
		{Name: "NOTIFY", Default: "problems", Doc: "problems publishes every outcome except INSTALLED, ALREADY_INSTALLED and SKIPPED; all publishes every outcome."},
		{Name: "RECONCILE_RATE", Default: "600", Doc: "Instances per minute a reconcile sweep hands to the install function (spread with message delays)."},
		{Name: protect.EnvPolicyID, Doc: "HBR backup policy (po-…) that every instance ending with an ACTIVATED client is bound to (ECS_FILE), unless BACKUP_POLICY_BY_TAG picks another. Empty with BACKUP_POLICY_BY_TAG empty: no binding."},
		{Name: protect.EnvPolicyByTag, Doc: "Comma-separated key=value:po-… (tag has that value) or key:po-… (tag present) terms; the first term the instance's tags match picks its policy, else BACKUP_POLICY_ID; no match and no BACKUP_POLICY_ID leaves it INSTALLED. Needs the instance's tags (ECS DescribeInstances)."},
		{Name: "RECONCILE_MAX_INSTANCES", Default: "1000000", Doc: "Upper bound of the instances one reconcile sweep looks at, over all its parts (the default covers any region)."},
	}
}

var (
	accountRule = ident.Rule{Min: 1, Max: 32, First: "0-9", Rest: "0-9"}
	// hostRule and portRule are the parts of an endpoint given as
	// host[:port], where the host may hold the "{region}" placeholder.
	hostRule    = ident.Rule{Min: 1, First: "A-Za-z0-9.{}-", Rest: "A-Za-z0-9.{}-"}
	portRule    = ident.Rule{Min: 1, Max: 5, First: "0-9", Rest: "0-9"}
	maxMNSDelay = 604800 * time.Second
)

// validHost reports whether s is host[:port] as hostRule and portRule say.
func validHost(s string) bool {
	host, port, hasPort := strings.Cut(s, ":")
	return hostRule.Valid(host) && (!hasPort || portRule.Valid(port))
}

// LeaseSlack is what LEDGER_LEASE=auto adds to the longest healthy step of
// a chain (readiness window, task timeout and margin): time for message
// delays and platform retries.
const LeaseSlack = 5 * time.Minute

// ledgerPrefixRule is LEDGER_PREFIX's alphabet.
var ledgerPrefixRule = ident.Rule{Min: 2, Max: 200, First: "A-Za-z0-9_.-", Rest: "A-Za-z0-9/_.-"}

// ValidBucket reports whether name is an OSS bucket name: 3-63 lower-case
// letters, digits or '-', starting and ending with a letter or digit.
func ValidBucket(name string) bool {
	if len(name) < 3 || len(name) > 63 || name[0] == '-' || name[len(name)-1] == '-' {
		return false
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') {
			return false
		}
	}
	return true
}

// HoldStatuses are the client statuses an operator sets, which are left as
// they are unless REINSTALL_STATUSES names them (package install decides
// with the same list; a test keeps the two in step).
var HoldStatuses = []string{"DEACTIVATED", "STOPPED", "UNINSTALLING", "UNINSTALL_FAILED"}

func reinstallStatuses(v string) (map[string]bool, error) {
	out := map[string]bool{}
	for _, f := range strings.Split(v, ",") {
		f = strings.ToUpper(strings.TrimSpace(f))
		if f == "" {
			continue
		}
		if !slices.Contains(HoldStatuses, f) {
			return nil, fmt.Errorf("REINSTALL_STATUSES: %q is not one of %s", clipValue(f), strings.Join(HoldStatuses, ", "))
		}
		out[f] = true
	}
	return out, nil
}

func clipValue(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}

// Load reads and validates the configuration. getenv is os.Getenv in
// production and a map lookup in tests.
func Load(getenv func(string) string) (Config, error) {
	var errs []error
	get := func(name string) string {
		v := strings.TrimSpace(getenv(name))
		if v == "" {
			for _, d := range Variables() {
				if d.Name == name && !strings.Contains(d.Default, "$") {
					return d.Default
				}
			}
		}
		return v
	}
	dur := func(name string, min, max time.Duration) time.Duration {
		d, err := ParseDuration(get(name))
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
			return 0
		}
		if d < min || d > max {
			errs = append(errs, fmt.Errorf("%s=%s: must be between %s and %s", name, d, min, max))
		}
		return d
	}
	num := func(name string, min, max int) int {
		n, err := strconv.Atoi(get(name))
		if err != nil {
			errs = append(errs, fmt.Errorf("%s=%q: not an integer", name, get(name)))
			return 0
		}
		if n < min || n > max {
			errs = append(errs, fmt.Errorf("%s=%d: must be between %d and %d", name, n, min, max))
		}
		return n
	}

	c := Config{
		Region:               get("FC_REGION"),
		AccountID:            get("FC_ACCOUNT_ID"),
		QueueName:            get("QUEUE_NAME"),
		InstallQueueName:     get("INSTALL_QUEUE_NAME"),
		LedgerBucket:         get("LEDGER_BUCKET"),
		LedgerPrefix:         get("LEDGER_PREFIX"),
		OSSEndpoint:          get("OSS_ENDPOINT"),
		DLQName:              get("DLQ_NAME"),
		MNSEndpoint:          get("MNS_ENDPOINT"),
		HBREndpoint:          get("HBR_ENDPOINT"),
		APITimeout:           dur("API_TIMEOUT", time.Second, 5*time.Minute),
		FirstPollDelay:       dur("FIRST_POLL_DELAY", time.Second, maxMNSDelay),
		PollInterval:         dur("POLL_INTERVAL", time.Second, maxMNSDelay),
		TaskTimeout:          dur("TASK_TIMEOUT", time.Second, 24*time.Hour),
		DeadlineMargin:       dur("DEADLINE_MARGIN", 0, time.Hour),
		ReadinessTimeout:     dur("READINESS_TIMEOUT", time.Second, 24*time.Hour),
		ReadinessDelay:       dur("READINESS_DELAY", time.Second, maxMNSDelay),
		ReadinessDelayStep:   dur("READINESS_DELAY_STEP", 0, maxMNSDelay),
		MaxInstallAttempts:   num("MAX_INSTALL_ATTEMPTS", 1, 10),
		RetryBaseDelay:       dur("RETRY_BASE_DELAY", time.Second, maxMNSDelay),
		RetryMaxDelay:        dur("RETRY_MAX_DELAY", time.Second, maxMNSDelay),
		CoalesceDelay:        dur("INSTALL_COALESCE_DELAY", 0, 15*time.Minute),
		MessagePriority:      num("MESSAGE_PRIORITY", 1, 16),
		CrossAccountType:     get("CROSS_ACCOUNT_TYPE"),
		CrossAccountRoleName: get("CROSS_ACCOUNT_ROLE_NAME"),
		LogLevel:             strings.ToLower(get("LOG_LEVEL")),
	}

	switch {
	case c.Region == "":
		errs = append(errs, errors.New("FC_REGION is not set (Function Compute sets it; set it by hand when running elsewhere)"))
	case !ident.Region.Valid(c.Region):
		errs = append(errs, fmt.Errorf("FC_REGION=%q is not a region id", c.Region))
	}
	if c.AccountID != "" && !accountRule.Valid(c.AccountID) {
		errs = append(errs, fmt.Errorf("FC_ACCOUNT_ID=%q is not an account id", c.AccountID))
	}
	switch {
	case c.QueueName == "":
		errs = append(errs, errors.New("QUEUE_NAME is required: the MNS queue the poller is triggered by"))
	case !ident.QueueName.Valid(c.QueueName):
		errs = append(errs, fmt.Errorf("QUEUE_NAME=%q: an MNS queue name is 1-120 letters, digits or '-', starting with a letter", c.QueueName))
	}
	if !ident.QueueName.Valid(c.DLQName) {
		errs = append(errs, fmt.Errorf("DLQ_NAME=%q: an MNS queue name is 1-120 letters, digits or '-', starting with a letter", c.DLQName))
	}
	switch {
	case !ident.QueueName.Valid(c.InstallQueueName):
		errs = append(errs, fmt.Errorf("INSTALL_QUEUE_NAME=%q: an MNS queue name is 1-120 letters, digits or '-', starting with a letter", c.InstallQueueName))
	case c.InstallQueueName == c.QueueName:
		errs = append(errs, fmt.Errorf("INSTALL_QUEUE_NAME and QUEUE_NAME are both %q: install work and poll steps need queues of their own (a poll that is due must never wait behind install work)", c.QueueName))
	}
	if c.LedgerBucket == "" {
		if c.AccountID == "" {
			errs = append(errs, errors.New("LEDGER_BUCKET is not set and FC_ACCOUNT_ID is unknown, so it cannot be derived"))
		} else {
			c.LedgerBucket = "hbr-autoinstall-ledger-" + c.AccountID + "-" + c.Region
		}
	}
	if !ValidBucket(c.LedgerBucket) && c.LedgerBucket != "" {
		errs = append(errs, fmt.Errorf("LEDGER_BUCKET=%q: an OSS bucket name is 3-63 lower-case letters, digits or '-', starting and ending with a letter or digit", clipValue(c.LedgerBucket)))
	}
	if !ledgerPrefixRule.Valid(c.LedgerPrefix) || !strings.HasSuffix(c.LedgerPrefix, "/") || strings.Contains(c.LedgerPrefix, "//") {
		errs = append(errs, fmt.Errorf("LEDGER_PREFIX=%q: 2-200 letters, digits or \"/_.-\", not starting with /, ending with /", clipValue(c.LedgerPrefix)))
	}
	if strings.Contains(c.OSSEndpoint, "://") {
		if err := checkURL(c.OSSEndpoint, true); err != nil {
			errs = append(errs, fmt.Errorf("OSS_ENDPOINT: %w", err))
		}
	} else if !validHost(c.OSSEndpoint) {
		errs = append(errs, fmt.Errorf("OSS_ENDPOINT=%q is neither a host name nor a URL", c.OSSEndpoint))
	}
	if c.MNSEndpoint == "" {
		if c.AccountID == "" {
			errs = append(errs, errors.New("MNS_ENDPOINT is not set and FC_ACCOUNT_ID is unknown, so it cannot be derived"))
		} else if c.Region != "" {
			c.MNSEndpoint = "https://" + c.AccountID + ".mns." + c.Region + ".aliyuncs.com"
		}
	} else if err := checkURL(c.MNSEndpoint, true); err != nil {
		errs = append(errs, fmt.Errorf("MNS_ENDPOINT: %w", err))
	}
	if strings.Contains(c.HBREndpoint, "://") {
		if err := checkURL(c.HBREndpoint, true); err != nil {
			errs = append(errs, fmt.Errorf("HBR_ENDPOINT: %w", err))
		}
	} else if !validHost(c.HBREndpoint) {
		errs = append(errs, fmt.Errorf("HBR_ENDPOINT=%q is neither a host name nor a URL", c.HBREndpoint))
	}
	if c.RetryMaxDelay < c.RetryBaseDelay {
		errs = append(errs, fmt.Errorf("RETRY_MAX_DELAY (%s) is smaller than RETRY_BASE_DELAY (%s)", c.RetryMaxDelay, c.RetryBaseDelay))
	}
	switch c.CrossAccountType {
	case "", "SELF_ACCOUNT":
	case "CROSS_ACCOUNT":
		if getenv("CROSS_ACCOUNT_USER_ID") == "" || c.CrossAccountRoleName == "" {
			errs = append(errs, errors.New("CROSS_ACCOUNT_TYPE=CROSS_ACCOUNT needs CROSS_ACCOUNT_USER_ID and CROSS_ACCOUNT_ROLE_NAME"))
		}
	default:
		errs = append(errs, fmt.Errorf("CROSS_ACCOUNT_TYPE=%q: want SELF_ACCOUNT or CROSS_ACCOUNT", c.CrossAccountType))
	}
	if v := get("CROSS_ACCOUNT_USER_ID"); v != "" {
		id, err := strconv.ParseInt(v, 10, 64)
		if err != nil || id <= 0 {
			errs = append(errs, fmt.Errorf("CROSS_ACCOUNT_USER_ID=%q is not an account id", v))
		}
		c.CrossAccountUserID = id
	}
	if c.CrossAccountRoleName != "" && !ident.RoleName.Valid(c.CrossAccountRoleName) {
		errs = append(errs, fmt.Errorf("CROSS_ACCOUNT_ROLE_NAME=%q is not a RAM role name", c.CrossAccountRoleName))
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		errs = append(errs, fmt.Errorf("LOG_LEVEL=%q: want debug, info, warn or error", c.LogLevel))
	}
	reinstall, err := reinstallStatuses(get("REINSTALL_STATUSES"))
	if err != nil {
		errs = append(errs, err)
	}
	c.ReinstallStatuses = reinstall
	c.Mode = strings.ToLower(get("MODE"))
	if c.Mode != ModeEnforce && c.Mode != ModeAudit {
		errs = append(errs, fmt.Errorf("MODE=%q: want enforce or audit", c.Mode))
	}
	rules, err := scope.Parse(get("INCLUDE_TAGS"), get("EXCLUDE_TAGS"), get("RESOURCE_GROUPS"), get("VPCS"))
	if err != nil {
		errs = append(errs, err)
	}
	c.Scope = rules
	c.ECSEndpoint = get("ECS_ENDPOINT")
	if strings.Contains(c.ECSEndpoint, "://") {
		if err := checkURL(c.ECSEndpoint, true); err != nil {
			errs = append(errs, fmt.Errorf("ECS_ENDPOINT: %w", err))
		}
	} else if !validHost(c.ECSEndpoint) {
		errs = append(errs, fmt.Errorf("ECS_ENDPOINT=%q is neither a host name nor a URL", c.ECSEndpoint))
	}
	c.OutcomeTagKey = get("OUTCOME_TAG_KEY")
	if c.OutcomeTagKey != "" {
		if err := ecs.CheckTag(c.OutcomeTagKey, "installed"); err != nil {
			errs = append(errs, fmt.Errorf("OUTCOME_TAG_KEY: %w", err))
		}
	}
	c.OutcomeTopic = get("OUTCOME_TOPIC")
	if c.OutcomeTopic != "" && !ident.TopicName.Valid(c.OutcomeTopic) {
		errs = append(errs, fmt.Errorf("OUTCOME_TOPIC=%q: an MNS topic name is 1-256 letters, digits or '-', starting with a letter", c.OutcomeTopic))
	}
	switch n := strings.ToLower(get("NOTIFY")); n {
	case "problems":
	case "all":
		c.NotifyAll = true
	default:
		errs = append(errs, fmt.Errorf("NOTIFY=%q: want problems or all", n))
	}
	if c.Protect, err = protect.Parse(get(protect.EnvPolicyID), get(protect.EnvPolicyByTag)); err != nil {
		errs = append(errs, err)
	}
	minLease := c.ReadinessTimeout + c.TaskTimeout + c.DeadlineMargin
	if v := get("LEDGER_LEASE"); strings.EqualFold(v, "auto") {
		c.LedgerLease = minLease + LeaseSlack
	} else {
		c.LedgerLease = dur("LEDGER_LEASE", time.Second, 7*24*time.Hour)
		if c.LedgerLease > 0 && c.LedgerLease < minLease {
			errs = append(errs, fmt.Errorf("LEDGER_LEASE=%s is shorter than READINESS_TIMEOUT + TASK_TIMEOUT + DEADLINE_MARGIN (%s): a healthy install would be taken over", c.LedgerLease, minLease))
		}
	}
	c.ReconcileRate = num("RECONCILE_RATE", 1, 100000)
	c.ReconcileMax = num("RECONCILE_MAX_INSTANCES", 1, 1000000)
	if len(errs) > 0 {
		return Config{}, fault.Wrap("config.Load", fault.Invalid, "", fmt.Errorf("invalid configuration: %w", errors.Join(errs...)))
	}
	return c, nil
}

// ParseDuration accepts a Go duration ("90s", "2m") or a plain integer number
// of seconds.
func ParseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, errors.New("empty duration")
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		if n < 0 || n > 1<<31 {
			return 0, fmt.Errorf("%q: out of range", s)
		}
		return time.Duration(n) * time.Second, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration (try 30s, 2m or a number of seconds)", s)
	}
	return d, nil
}

// checkURL accepts https URLs, and http URLs only on loopback hosts (local
// emulators).
func checkURL(raw string, allowLoopbackHTTP bool) error {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return fmt.Errorf("%q is not a URL", raw)
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		if allowLoopbackHTTP && ident.Loopback(u.Hostname()) {
			return nil
		}
		return fmt.Errorf("%q: plain http is only allowed for a loopback emulator; use https", raw)
	default:
		return fmt.Errorf("%q: unsupported scheme %q", raw, u.Scheme)
	}
}
