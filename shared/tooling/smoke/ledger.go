package smoke

import (
	"context"
	"strings"
	"time"

	"github.com/hbr-autoinstall/hbr-autoinstall/shared/cloudauth"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/ledger"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/ossstore"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/tooling/provision"
)

// OSSLedger is the Ledger of a deployed stack: the region's ledger bucket
// read with the operator's AccessKey through the OSS SDK (shared/ossstore
// for the entries, provision.BucketClient for the bucket's settings). The
// key needs oss:GetBucketInfo on the bucket and oss:ListObjects and
// oss:GetObject on the prefix.
type OSSLedger struct {
	bucket, region string
	ledger         *ledger.Ledger
	buckets        *provision.BucketClient
}

// LedgerConfig locates a region's ledger, as the functions' LEDGER_BUCKET,
// LEDGER_PREFIX and OSS_ENDPOINT do.
type LedgerConfig struct {
	// Endpoint is the OSS endpoint; {region} is replaced (default
	// provision.DefaultOSSEndpoint).
	Endpoint string
	Region   string
	// Account is the account the instances belong to (part of every key).
	Account string
	// Bucket is the bucket, {account} and {region} replaced (default
	// provision.DefaultLedgerBucket); Prefix the key prefix (default
	// provision.DefaultLedgerPrefix).
	Bucket, Prefix string
	// Timeout bounds each call.
	Timeout time.Duration
}

// NewOSSLedger returns the Ledger cfg names. It sends nothing; its errors
// are fault.Invalid.
func NewOSSLedger(cfg LedgerConfig, cred cloudauth.Credentials) (*OSSLedger, error) {
	if cfg.Endpoint == "" {
		cfg.Endpoint = provision.DefaultOSSEndpoint
	}
	if cfg.Bucket == "" {
		cfg.Bucket = provision.DefaultLedgerBucket
	}
	if cfg.Prefix == "" {
		cfg.Prefix = provision.DefaultLedgerPrefix
	}
	endpoint := strings.ReplaceAll(cfg.Endpoint, provision.PatternRegion, cfg.Region)
	bucket := provision.LedgerBucketName(cfg.Bucket, cfg.Account, cfg.Region)
	store, err := ossstore.New(ossstore.Config{Endpoint: endpoint, Region: cfg.Region, Bucket: bucket, Timeout: cfg.Timeout}, cred)
	if err != nil {
		return nil, err
	}
	buckets, err := provision.NewBucketClient(cred, endpoint, cfg.Region, cfg.Timeout)
	if err != nil {
		return nil, err
	}
	return &OSSLedger{bucket: bucket, region: cfg.Region, buckets: buckets,
		ledger: &ledger.Ledger{Store: store, Prefix: cfg.Prefix, Account: cfg.Account}}, nil
}

// Where implements Ledger.
func (o *OSSLedger) Where() (bucket, prefix string) { return o.bucket, o.ledger.Prefix }

// Check implements Ledger with GetBucketInfo and provision.CheckLedgerBucket.
func (o *OSSLedger) Check(ctx context.Context) error {
	info, err := o.buckets.Info(ctx, o.bucket)
	if err != nil {
		return err
	}
	return provision.CheckLedgerBucket(info, o.region)
}

// Load implements Ledger.
func (o *OSSLedger) Load(ctx context.Context, region, instance string) (ledger.State, error) {
	return o.ledger.Load(ctx, region, instance)
}
