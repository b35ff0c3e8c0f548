// Package handler holds the Function Compute handlers (install, poller,
// reconcile): each decodes its trigger's payload, builds the invocation's
// cloud clients and instance ledger from its credentials, runs the domain
// step (packages install, poll and reconcile), writes each outcome as its
// generation's final ledger record before it logs, tags and publishes it,
// sends the follow-up messages (install work to the install queue, the rest
// to the job queue), and maps the result to the trigger's contract: an error
// is returned only when the platform retrying the invocation can help (the
// ledger or a queue could not be reached, a follow-up message could not be
// queued), or when the whole payload is unusable.
package handler

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/hbr-autoinstall/hbr-autoinstall/shared/cloudauth"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/config"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/ecs"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/hbr"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/install"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/ledger"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/notify"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/ossstore"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/poll"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/protect"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/taskqueue"
)

// HBR is what the handlers need of an HBR client.
type HBR interface {
	install.Installer
	poll.TaskReader
	protect.Binder
}

// Sender sends one message to the job queue (taskqueue.Sender satisfies it).
type Sender interface {
	Send(ctx context.Context, m taskqueue.Message) (string, error)
}

// ECS is what the handlers need of an ECS client (ecs.Client satisfies it).
type ECS interface {
	install.Inventory
	ListInstances(ctx context.Context, status string) ([]ecs.Instance, error)
	TagInstance(ctx context.Context, id, key, value string) error
}

// Publisher publishes to the outcome topic (notify.Publisher satisfies it).
type Publisher interface {
	Publish(ctx context.Context, body []byte, tag string) (string, error)
}

// Cloud builds the clients of one invocation.
type Cloud interface {
	HBR(ctx context.Context, region string) (HBR, error)
	ECS(ctx context.Context, region string) (ECS, error)
	// Queue sends to the job queue (poll, bind and sweep steps: the
	// poller's), InstallQueue to the install queue (install work: the
	// install function's).
	Queue(ctx context.Context) (Sender, error)
	InstallQueue(ctx context.Context) (Sender, error)
	// Store is the instance ledger's object store.
	Store(ctx context.Context) (ledger.Store, error)
	// Topic returns the outcome topic's publisher, or nil when no topic is
	// configured.
	Topic(ctx context.Context) (Publisher, error)
}

// SDKCloud builds real SDK-backed clients from the invocation's credentials
// (the FC context, or the environment as a fallback).
type SDKCloud struct {
	Config config.Config
	Getenv func(string) string
}

// HBR implements Cloud.
func (c SDKCloud) HBR(ctx context.Context, region string) (HBR, error) {
	cred, err := cloudauth.FromContext(ctx, c.Getenv)
	if err != nil {
		return nil, err
	}
	return hbr.New(hbr.Config{
		Region:               region,
		Endpoint:             c.Config.HBREndpoint,
		Timeout:              c.Config.APITimeout,
		CrossAccountType:     c.Config.CrossAccountType,
		CrossAccountUserID:   c.Config.CrossAccountUserID,
		CrossAccountRoleName: c.Config.CrossAccountRoleName,
	}, cred)
}

// ECS implements Cloud.
func (c SDKCloud) ECS(ctx context.Context, region string) (ECS, error) {
	cred, err := cloudauth.FromContext(ctx, c.Getenv)
	if err != nil {
		return nil, err
	}
	return ecs.New(ecs.Config{Region: region, Endpoint: c.Config.ECSEndpoint, Timeout: c.Config.APITimeout}, cred)
}

// Topic implements Cloud.
func (c SDKCloud) Topic(ctx context.Context) (Publisher, error) {
	if c.Config.OutcomeTopic == "" {
		return nil, nil
	}
	cred, err := cloudauth.FromContext(ctx, c.Getenv)
	if err != nil {
		return nil, err
	}
	return notify.New(notify.Config{
		Endpoint:  c.Config.MNSEndpoint,
		Topic:     c.Config.OutcomeTopic,
		Timeout:   c.Config.APITimeout,
		AccountID: c.Config.AccountID,
		Region:    c.Config.Region,
	}, cred)
}

// Queue implements Cloud.
func (c SDKCloud) Queue(ctx context.Context) (Sender, error) { return c.queue(ctx, c.Config.QueueName) }

// InstallQueue implements Cloud.
func (c SDKCloud) InstallQueue(ctx context.Context) (Sender, error) {
	return c.queue(ctx, c.Config.InstallQueueName)
}

func (c SDKCloud) queue(ctx context.Context, name string) (Sender, error) {
	cred, err := cloudauth.FromContext(ctx, c.Getenv)
	if err != nil {
		return nil, err
	}
	q, err := taskqueue.New(taskqueue.Config{
		Endpoint:  c.Config.MNSEndpoint,
		Queue:     name,
		Priority:  c.Config.MessagePriority,
		Timeout:   c.Config.APITimeout,
		AccountID: c.Config.AccountID,
		Region:    c.Config.Region,
	}, cred)
	if err != nil {
		return nil, err
	}
	return q, nil
}

// Store implements Cloud: the ledger bucket over OSS, in the function's
// region.
func (c SDKCloud) Store(ctx context.Context) (ledger.Store, error) {
	cred, err := cloudauth.FromContext(ctx, c.Getenv)
	if err != nil {
		return nil, err
	}
	st, err := ossstore.New(ossstore.Config{
		Endpoint: strings.ReplaceAll(c.Config.OSSEndpoint, "{region}", c.Config.Region),
		Region:   c.Config.Region,
		Bucket:   c.Config.LedgerBucket,
		Timeout:  c.Config.APITimeout,
	}, cred)
	if err != nil {
		return nil, err
	}
	return st, nil
}

// session memoises one invocation's clients, one per region and product.
type session struct {
	cloud Cloud
	mu    sync.Mutex
	hbr   map[string]HBR
	ecs   map[string]ECS
	store ledger.Store
	// started counts the poll messages queued the moment their tasks were
	// recorded (Deps.queueNow).
	started int
}

func newSession(c Cloud) *session {
	return &session{cloud: c, hbr: map[string]HBR{}, ecs: map[string]ECS{}}
}

// ledgerStore returns the invocation's ledger store (built once).
func (s *session) ledgerStore(ctx context.Context) (ledger.Store, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.store != nil {
		return s.store, nil
	}
	st, err := s.cloud.Store(ctx)
	if err != nil {
		return nil, err
	}
	s.store = st
	return st, nil
}

func (s *session) ecsClient(ctx context.Context, region string) (ECS, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if cl, ok := s.ecs[region]; ok {
		return cl, nil
	}
	cl, err := s.cloud.ECS(ctx, region)
	if err != nil {
		return nil, err
	}
	s.ecs[region] = cl
	return cl, nil
}

func (s *session) inventory(ctx context.Context, region string) (install.Inventory, error) {
	return s.ecsClient(ctx, region)
}

func (s *session) client(ctx context.Context, region string) (HBR, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if cl, ok := s.hbr[region]; ok {
		return cl, nil
	}
	first, err := s.cloud.HBR(ctx, region)
	if err != nil {
		return nil, err
	}
	cl := newHBRPool(first, hbrParallel, func(ctx context.Context) (HBR, error) { return s.cloud.HBR(ctx, region) })
	s.hbr[region] = cl
	return cl, nil
}

func (s *session) installer(ctx context.Context, region string) (install.Installer, error) {
	return s.client(ctx, region)
}

func (s *session) tasks(ctx context.Context, region string) (poll.TaskReader, error) {
	return s.client(ctx, region)
}

func (s *session) binder(ctx context.Context, region string) (protect.Binder, error) {
	return s.client(ctx, region)
}

// FullJitter spreads a back-off delay uniformly over [d/2, d], so messages
// throttled together do not come back together.
func FullJitter(d time.Duration) time.Duration {
	if d <= time.Second {
		return d
	}
	return d/2 + rand.N(d/2+1)
}

// Misconfigured returns a handler that fails every invocation with err. A
// function whose configuration does not load keeps running and says why on
// each call, instead of exiting and being restarted in a loop.
func Misconfigured(log *slog.Logger, err error) func(context.Context, []byte) (struct{}, error) {
	return func(ctx context.Context, _ []byte) (struct{}, error) {
		log.ErrorContext(ctx, "configuration", slog.String("error", err.Error()))
		return struct{}{}, err
	}
}
