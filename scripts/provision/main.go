// Command provision creates, idempotently, the RAM role and policy the
// functions run with and, in every region, the MNS job queue, install queue
// and dead-letter queue and the instance ledger's OSS bucket, before
// `s deploy`. Run it through `make provision`; a second run changes nothing.
//
// The ledger bucket (-ledger-bucket, default one per region,
// hbr-autoinstall-ledger-<account>-<region>, as the functions derive
// LEDGER_BUCKET) is created private and is never versioned: a bucket that
// exists with versioning Enabled or Suspended, a public ACL or in another
// region is reported as an error and left alone. A lifecycle rule deletes
// the entries under -ledger-prefix -ledger-expiry-days after they were
// written (an instance whose entries expired is claimed afresh when it is
// next announced); the bucket's other lifecycle rules are kept.
//
// Credentials come from ALIBABA_CLOUD_ACCESS_KEY_ID,
// ALIBABA_CLOUD_ACCESS_KEY_SECRET and (optionally)
// ALIBABA_CLOUD_SECURITY_TOKEN. The account id is looked up with STS
// GetCallerIdentity unless -account is given. -dry-run prints the rendered
// policy and the plan and calls nothing but that lookup.
//
// The policy grants what the default configuration uses; the optional
// features add their own statement when asked: -tag-writeback
// (OUTCOME_TAG_KEY: ecs:TagResources on the account's instances), -topic NAME
// (OUTCOME_TOPIC: mns:PublishMessage on that topic) and -bind
// (BACKUP_POLICY_ID / BACKUP_POLICY_BY_TAG: the two policy-binding actions).
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/hbr-autoinstall/hbr-autoinstall/shared/cloudauth"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/tooling/provision"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	switch {
	case errors.Is(err, flag.ErrHelp):
	case err != nil:
		fmt.Fprintln(os.Stderr, "provision:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("provision", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		regions     = fs.String("regions", "cn-hangzhou", "regions to cover, separated by spaces or commas")
		queue       = fs.String("queue", "hbr-autoinstall-jobs", "MNS job queue name")
		installQ    = fs.String("install-queue", "hbr-autoinstall-installs", "MNS install queue name (INSTALL_QUEUE_NAME)")
		dlq         = fs.String("dlq", "hbr-autoinstall-dlq", "MNS dead-letter queue name")
		bucket      = fs.String("ledger-bucket", provision.DefaultLedgerBucket, "ledger bucket of each region (LEDGER_BUCKET); {account} and {region} are replaced")
		prefix      = fs.String("ledger-prefix", provision.DefaultLedgerPrefix, "key prefix of the ledger's entries (LEDGER_PREFIX)")
		expiry      = fs.Int("ledger-expiry-days", provision.DefaultLedgerExpiryDays, "days after which a ledger entry is deleted (a lifecycle rule on the prefix)")
		role        = fs.String("role", "hbr-autoinstall-fc", "RAM role the functions run as")
		policyName  = fs.String("policy-name", "hbr-autoinstall-fc-policy", "custom RAM policy attached to the role")
		account     = fs.String("account", "", "account id (default: looked up with STS GetCallerIdentity)")
		policyFile  = fs.String("policy-template", "scripts/ram/policy.json", "policy template")
		trustFile   = fs.String("trust-policy", "scripts/ram/trust-policy.json", "role trust policy")
		dryRun      = fs.Bool("dry-run", false, "print the rendered policy and the plan; change nothing")
		tagWrite    = fs.Bool("tag-writeback", false, "allow ecs:TagResources on the account's instances (for OUTCOME_TAG_KEY)")
		topic       = fs.String("topic", "", "allow mns:PublishMessage on this MNS topic (for OUTCOME_TOPIC)")
		bind        = fs.Bool("bind", false, "allow hbr:CreatePolicyBindings and hbr:DescribePolicyBindings (for BACKUP_POLICY_ID / BACKUP_POLICY_BY_TAG)")
		ramEndpoint = fs.String("ram-endpoint", provision.RAMEndpoint, "RAM endpoint (host or URL)")
		stsEndpoint = fs.String("sts-endpoint", provision.STSEndpoint, "STS endpoint (host or URL)")
		mnsEndpoint = fs.String("mns-endpoint", provision.DefaultMNSEndpoint, "MNS endpoint; {account} and {region} are replaced")
		ossEndpoint = fs.String("oss-endpoint", provision.DefaultOSSEndpoint, "OSS endpoint; {region} is replaced")
		timeout     = fs.Duration("timeout", 15*time.Second, "timeout of each API call")
	)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}

	template, err := os.ReadFile(*policyFile)
	if err != nil {
		return fmt.Errorf("read policy template: %w", err)
	}
	trust, err := os.ReadFile(*trustFile)
	if err != nil {
		return fmt.Errorf("read trust policy: %w", err)
	}

	creds, credErr := cloudauth.FromContext(ctx, getenv)
	if *account == "" {
		if credErr != nil {
			return fmt.Errorf("-account not given and it cannot be looked up: %w", credErr)
		}
		id, err := provision.AccountID(ctx, creds, *stsEndpoint, *timeout)
		if err != nil {
			return fmt.Errorf("look up the account id: %w", err)
		}
		*account = id
	}

	plan := provision.Plan{
		PolicyParams: provision.PolicyParams{
			AccountID:    *account,
			Regions:      strings.FieldsFunc(*regions, func(r rune) bool { return r == ',' || r == ' ' }),
			Queue:        *queue,
			InstallQueue: *installQ,
			DLQ:          *dlq,
			LedgerBucket: *bucket,
			LedgerPrefix: *prefix,
			TagWriteback: *tagWrite,
			Topic:        *topic,
			Bind:         *bind,
		},
		RoleName:         *role,
		PolicyName:       *policyName,
		PolicyTemplate:   template,
		TrustPolicy:      trust,
		LedgerExpiryDays: *expiry,
	}
	if err := plan.Validate(); err != nil {
		return err
	}

	if *dryRun {
		return preview(plan, stdout, stderr)
	}
	if credErr != nil {
		return credErr
	}

	ram, err := provision.NewRAMClient(creds, *ramEndpoint, *timeout)
	if err != nil {
		return err
	}
	p := provision.Provisioner{
		RAM:          ram,
		EnsureQueue:  provision.TaskQueueEnsurer(creds, *account, *mnsEndpoint, *timeout),
		EnsureBucket: provision.OSSBucketEnsurer(creds, *ossEndpoint, *timeout),
		Progress:     func(s provision.Step) { fmt.Fprintln(stderr, s) },
	}
	steps, err := p.Run(ctx, plan)
	if err != nil {
		return err
	}
	changed := 0
	for _, s := range steps {
		if s.Result != provision.Unchanged {
			changed++
		}
	}
	fmt.Fprintf(stderr, "%d of %d resources changed; role ARN: acs:ram::%s:role/%s\n",
		changed, len(steps), *account, strings.ToLower(*role))
	return nil
}

// preview prints the rendered policy on stdout and the plan on stderr.
func preview(plan provision.Plan, stdout, stderr io.Writer) error {
	policy, err := provision.RenderPolicy(plan.PolicyTemplate, plan.PolicyParams)
	if err != nil {
		return err
	}
	var pretty bytes.Buffer
	if err := json.Indent(&pretty, policy, "", "  "); err != nil {
		return fmt.Errorf("format rendered policy: %w", err)
	}
	fmt.Fprintln(stdout, pretty.String())

	fmt.Fprintf(stderr, "dry run, nothing changed. Would ensure:\n")
	fmt.Fprintf(stderr, "  role %s (trust policy %s)\n", plan.RoleName, compact(plan.TrustPolicy))
	fmt.Fprintf(stderr, "  policy %s = the document above (%d bytes), attached to %s\n", plan.PolicyName, len(policy), plan.RoleName)
	for _, q := range plan.Queues() {
		fmt.Fprintf(stderr, "  queue %s in %s (retention %ds)\n", q.Name, q.Region, q.MessageRetentionPeriod)
	}
	for _, b := range plan.Buckets() {
		fmt.Fprintf(stderr, "  ledger bucket %s in %s (private, not versioned; entries under %s expire after %d days)\n",
			b.Name, b.Region, b.Prefix, b.ExpiryDays)
	}
	return nil
}

func compact(doc []byte) string {
	var v any
	if err := json.Unmarshal(doc, &v); err != nil {
		return string(doc)
	}
	out, err := json.Marshal(v)
	if err != nil {
		return string(doc)
	}
	return string(out)
}
