// Command smoke checks a deployed stack in one region (make smoke): it
// invokes the install function with a Running event for an instance that
// cannot exist, waits for the instance's outcome record in the install and
// poller logs, and prints PASS when it is GONE, or FAIL with a diagnosis
// (one is that the functions cannot reach the instance ledger's bucket). It
// also prints the depths of the job, install and dead-letter queues.
//
// It drives the stack with Serverless Devs (s invoke, s logs), with the
// credentials of `s config` (-a <alias> picks another alias). When
// ALIBABA_CLOUD_ACCESS_KEY_ID and ALIBABA_CLOUD_ACCESS_KEY_SECRET are set
// (the account id is then looked up with STS unless -account gives it), it
// reads the queue depths with the MNS API, and the instance ledger with OSS:
// the synthetic instance's final record and generation, and whether the
// bucket can hold the ledger (a versioned, public or misplaced bucket
// fails the run, as does a logged outcome the ledger does not hold);
// otherwise they are reported as not read. It exits 1 on FAIL, 2 on bad
// usage.
package main

import (
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
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/tooling/smoke"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	verdict, err := run(ctx, os.Args[1:], os.Environ(), os.Getenv, os.Stdout, os.Stderr)
	switch {
	case errors.Is(err, flag.ErrHelp):
		os.Exit(0)
	case err != nil:
		fmt.Fprintln(os.Stderr, "smoke:", err)
		os.Exit(2)
	case verdict != smoke.Pass:
		os.Exit(1)
	}
}

func run(ctx context.Context, args, environ []string, getenv func(string) string, stdout, stderr io.Writer) (smoke.Verdict, error) {
	fs := flag.NewFlagSet("smoke", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		sBin     = fs.String("s", "s", "Serverless Devs CLI")
		dir      = fs.String("dir", ".", "directory of the template")
		template = fs.String("t", "s.yaml", "template describing the stack")
		access   = fs.String("a", "", "credentials alias of s config (default: the template's access)")
		region   = fs.String("region", "cn-hangzhou", "region of the stack (passed to s as REGION)")
		account  = fs.String("account", "", "account id for the MNS endpoint (default: looked up with STS)")
		queue    = fs.String("queue", "hbr-autoinstall-jobs", "job queue")
		installQ = fs.String("install-queue", "hbr-autoinstall-installs", "install queue")
		dlq      = fs.String("dlq", "hbr-autoinstall-dlq", "dead-letter queue")
		bucket   = fs.String("ledger-bucket", provision.DefaultLedgerBucket, "ledger bucket (LEDGER_BUCKET); {account} and {region} are replaced")
		prefix   = fs.String("ledger-prefix", provision.DefaultLedgerPrefix, "ledger key prefix (LEDGER_PREFIX)")
		ossEP    = fs.String("oss-endpoint", provision.DefaultOSSEndpoint, "OSS endpoint (OSS_ENDPOINT); {region} is replaced")
		instance = fs.String("instance", "", "instance id the event names (default: a new i-smoke… id no account holds)")
		install  = fs.String("install", "install", "s.yaml resource of the install function")
		logFns   = fs.String("logs", "install,poller", "s.yaml resources whose logs may hold the outcome record")
		timeout  = fs.Duration("timeout", 5*time.Minute, "how long to wait for the outcome record")
		every    = fs.Duration("poll", 10*time.Second, "how often to read the logs")
		mnsEP    = fs.String("mns-endpoint", provision.DefaultMNSEndpoint, "MNS endpoint; {account} and {region} are replaced")
		asJSON   = fs.Bool("json", false, "print the report as JSON")
	)
	if err := fs.Parse(args); err != nil {
		return "", err
	}
	if fs.NArg() > 0 {
		return "", fmt.Errorf("unexpected arguments %q", fs.Args())
	}

	tr := &smoke.ServerlessDevs{
		S: *sBin, Dir: *dir, Template: *template,
		Env: append(append([]string(nil), environ...), "REGION="+*region),
	}
	if *access != "" {
		tr.Args = []string{"-a", *access}
	}
	var ledger smoke.Ledger
	if creds, err := cloudauth.FromContext(ctx, getenv); err == nil {
		id := *account
		if id == "" {
			id, err = provision.AccountID(ctx, creds, provision.STSEndpoint, 15*time.Second)
		}
		switch {
		case err != nil:
			fmt.Fprintf(stderr, "smoke: queue depths and ledger not read: look up the account id: %v\n", err)
		default:
			if qr, err := smoke.NewQueueReader(provision.MNSEndpoint(*mnsEP, id, *region), creds, 15*time.Second); err != nil {
				fmt.Fprintf(stderr, "smoke: queue depths not read: %v\n", err)
			} else {
				tr.Queues = qr
			}
			if l, err := smoke.NewOSSLedger(smoke.LedgerConfig{Endpoint: *ossEP, Region: *region, Account: id,
				Bucket: *bucket, Prefix: *prefix, Timeout: 15 * time.Second}, creds); err != nil {
				fmt.Fprintf(stderr, "smoke: ledger not read: %v\n", err)
			} else {
				ledger = l
			}
		}
	} else {
		fmt.Fprintln(stderr, "smoke: queue depths and ledger not read: set ALIBABA_CLOUD_ACCESS_KEY_ID and ALIBABA_CLOUD_ACCESS_KEY_SECRET (as for make provision) to read them")
	}

	progress := stderr
	res := smoke.Run(ctx, smoke.Config{
		Region: *region, AccountID: *account, Install: *install,
		LogFunctions: strings.Split(*logFns, ","), Queue: *queue, InstallQueue: *installQ, DLQ: *dlq,
		Ledger: ledger, InstanceID: *instance,
		Timeout: *timeout, PollEvery: *every, Progress: progress,
	}, tr)
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(res); err != nil {
			return "", err
		}
	} else {
		fmt.Fprintf(stdout, "smoke %s: ", *region)
		res.Write(stdout)
	}
	return res.Verdict, nil
}
