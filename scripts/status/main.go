// Command status prints what the instance ledger holds for one region
// (make status): every instance with the state of its latest generation —
// claimed by a job, installing a task, its final outcome, stale (the lease
// passed with no final record) or unreadable (the key is named) — then the
// counts, the instances that are not protected with their reasons, and the
// stale claims. -json prints one JSON document instead (instances, summary,
// unprotected, stale).
//
// It reads the ledger bucket with the operator's AccessKey
// (ALIBABA_CLOUD_ACCESS_KEY_ID, ALIBABA_CLOUD_ACCESS_KEY_SECRET, optionally
// ALIBABA_CLOUD_SECURITY_TOKEN), which needs oss:ListObjects and
// oss:GetObject on it. The account id, part of every key, is looked up with
// STS GetCallerIdentity unless -account gives it. The bucket and prefix
// default to the functions' (LEDGER_BUCKET, LEDGER_PREFIX).
//
// It exits 1 when the ledger could not be listed (what was read is still
// printed), 2 on bad usage or missing credentials; unprotected instances
// are a finding, not a failure.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/hbr-autoinstall/hbr-autoinstall/shared/cloudauth"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/ledger"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/ossstore"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/tooling/provision"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/tooling/status"
)

// errRead marks a failure to read the ledger (exit status 1).
var errRead = errors.New("the ledger could not be read completely")

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	err := run(ctx, os.Args[1:], os.Getenv, time.Now, os.Stdout, os.Stderr)
	stop()
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
	case errors.Is(err, errRead):
		fmt.Fprintln(os.Stderr, "status:", err)
		os.Exit(1)
	default:
		fmt.Fprintln(os.Stderr, "status:", err)
		os.Exit(2)
	}
}

func run(ctx context.Context, args []string, getenv func(string) string, now func() time.Time, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("status", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		region   = fs.String("region", "cn-hangzhou", "region whose ledger is read")
		account  = fs.String("account", "", "account id (default: looked up with STS GetCallerIdentity)")
		bucket   = fs.String("bucket", provision.DefaultLedgerBucket, "ledger bucket (LEDGER_BUCKET); {account} and {region} are replaced")
		prefix   = fs.String("prefix", provision.DefaultLedgerPrefix, "key prefix of the ledger's entries (LEDGER_PREFIX)")
		endpoint = fs.String("endpoint", provision.DefaultOSSEndpoint, "OSS endpoint (OSS_ENDPOINT); {region} is replaced")
		stsEP    = fs.String("sts-endpoint", provision.STSEndpoint, "STS endpoint (host or URL)")
		policy   = fs.Bool("policy-expected", false, "count only PROTECTED and ALREADY_PROTECTED as protected (a backup policy is configured)")
		asJSON   = fs.Bool("json", false, "print one JSON document (instances, summary, unprotected, stale)")
		workers  = fs.Int("workers", status.DefaultWorkers, "instances read at once")
		timeout  = fs.Duration("timeout", 10*time.Second, "timeout of each OSS call")
	)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	creds, err := cloudauth.FromContext(ctx, getenv)
	if err != nil {
		return fmt.Errorf("the ledger is read with your AccessKey: %w", err)
	}
	if *account == "" {
		id, err := provision.AccountID(ctx, creds, *stsEP, *timeout)
		if err != nil {
			return fmt.Errorf("look up the account id (or give -account): %w", err)
		}
		*account = id
	}
	name := provision.LedgerBucketName(*bucket, *account, *region)
	store, err := ossstore.New(ossstore.Config{
		Endpoint: strings.ReplaceAll(*endpoint, provision.PatternRegion, *region),
		Region:   *region, Bucket: name, Timeout: *timeout,
	}, creds)
	if err != nil {
		return err
	}
	l := &ledger.Ledger{Store: store, Prefix: *prefix, Account: *account}
	opts := status.Options{Workers: *workers, PolicyExpected: *policy, Progress: func(done, total int) {
		if done%5000 == 0 {
			fmt.Fprintf(stderr, "status: read %d of %d instances\n", done, total)
		}
	}}
	rep, readErr := opts.Read(ctx, l, *region, now())
	if *asJSON {
		err = rep.WriteJSON(stdout)
	} else {
		fmt.Fprintf(stdout, "bucket %s\n", name)
		err = rep.PrintTable(stdout)
	}
	if readErr != nil {
		return fmt.Errorf("%w (bucket %s): %w", errRead, name, readErr)
	}
	return err
}
