// Package smoke checks that a deployed stack works end to end: it invokes
// the install function with a synthetic ECS "Running" event for an instance
// that cannot exist, waits for that instance's outcome record in the
// functions' logs, and judges it. GONE is the expected outcome: the
// instance ledger was reached (the event is claimed there before anything
// else, and the outcome recorded there before it is logged), HBR was
// reached with the function role's credentials, at the configured endpoint,
// answered that the instance does not exist, and the record reached the
// logs. An invocation that fails on the ledger ("instance ledger", an
// oss.* operation) is diagnosed as the functions not reaching the ledger
// bucket.
//
// With a [Ledger] (the operator's AccessKey), it also reads the ledger for
// the synthetic instance and reports its final record and generation, and
// checks that the bucket can hold the ledger (not versioned, private, in
// the region). It reports the depths of the job, install and dead-letter
// queues.
//
// [Run] holds the logic; a [Transport] reaches the stack: scripts/smoke
// drives the real one with Serverless Devs (`s invoke`, `s logs`), the MNS
// API and OSS, the tests drive the local cloud (shared/localcloud) and the
// emulators. Nothing else differs.
//
// Nothing here is classified with shared/fault: this package runs in a
// command-line tool, not in the functions. Transports mark the failures Run
// diagnoses by wrapping [ErrFunctionMissing] or [ErrInvocationDenied];
// [OSSLedger] passes on the classified errors of the OSS adapters
// (shared/ossstore, shared/tooling/provision), which Run reports as text.
package smoke

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
	"time"

	"github.com/hbr-autoinstall/hbr-autoinstall/shared/ledger"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/tooling/provision"
)

// Errors a Transport wraps so that Run can name the failure.
var (
	// ErrFunctionMissing: the function is not deployed (FunctionNotFound).
	ErrFunctionMissing = errors.New("function not found")
	// ErrInvocationDenied: the caller may not invoke the function (or its
	// credentials are wrong).
	ErrInvocationDenied = errors.New("invocation denied")
)

// Transport reaches a deployed stack, or the local cloud.
type Transport interface {
	// Invoke invokes function synchronously with payload and returns its
	// answer. An error the function itself returned is a *FunctionError.
	Invoke(ctx context.Context, function string, payload []byte) ([]byte, error)
	// Logs returns the log lines function wrote since since that contain
	// search (a transport may return more lines; Run filters them).
	Logs(ctx context.Context, function string, since time.Time, search string) ([]string, error)
	// QueueDepth returns the number of messages in a queue.
	QueueDepth(ctx context.Context, queue string) (Depth, error)
}

// FunctionError is an error the invoked function returned (FC's
// x-fc-error-type answer), as opposed to one from reaching it.
type FunctionError struct {
	Type    string
	Message string
}

// Error implements error.
func (e *FunctionError) Error() string {
	if e.Type == "" {
		return e.Message
	}
	return e.Type + ": " + e.Message
}

// Depth is a queue's message counts (MNS GetQueueAttributes).
type Depth struct {
	// Visible messages wait to be received (ActiveMessages).
	Visible int64 `json:"visible"`
	// Delayed messages are not visible yet (DelayMessages).
	Delayed int64 `json:"delayed"`
	// InFlight messages were received and not yet deleted
	// (InactiveMessages).
	InFlight int64 `json:"inFlight"`
}

// Total is the number of messages in the queue.
func (d Depth) Total() int64 { return d.Visible + d.Delayed + d.InFlight }

// Config says what to check and how long to wait.
type Config struct {
	// Region and AccountID stamp the synthetic event (AccountID may be
	// empty: the event names the instance in its data).
	Region, AccountID string
	// Install is the function invoked (default "install").
	Install string
	// LogFunctions are the functions whose logs may hold the outcome
	// record (default install and poller: whichever calls HBR records it).
	LogFunctions []string
	// Queue, InstallQueue and DLQ are the job, install and dead-letter
	// queues whose depths are reported; an empty name is skipped.
	Queue, InstallQueue, DLQ string
	// Ledger, when set, reads the instance ledger for the report.
	Ledger Ledger
	// InstanceID is the instance the event names (default NewInstanceID()).
	InstanceID string
	// Timeout bounds the wait for the outcome record (default 5 minutes:
	// the deployed first poll comes after 60 s, and SLS indexes logs within
	// seconds to a minute).
	Timeout time.Duration
	// PollEvery is how often the logs are read (default 10 s).
	PollEvery time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Progress, when set, receives a line per step as it happens.
	Progress io.Writer
}

// Verdict is a smoke run's conclusion.
type Verdict string

// Verdicts.
const (
	Pass Verdict = "PASS"
	Fail Verdict = "FAIL"
)

// Failure names what went wrong, for scripts reading the JSON report.
type Failure string

// Failures Run diagnoses.
const (
	FunctionMissing     Failure = "function-missing"
	InvocationDenied    Failure = "invocation-denied"
	InvocationFailed    Failure = "invocation-failed"
	HBRPermissionDenied Failure = "hbr-permission-denied"
	NoOutcome           Failure = "no-outcome"
	UnexpectedOutcome   Failure = "unexpected-outcome"
	// LedgerUnreachable: the functions failed on the instance ledger.
	LedgerUnreachable Failure = "ledger-unreachable"
	// LedgerUnfit: the ledger bucket is versioned, public or in another
	// region.
	LedgerUnfit Failure = "ledger-unfit"
	// LedgerMissingRecord: the functions logged the outcome, but the ledger
	// read holds no final record for the instance: they use another bucket
	// or prefix than the one read.
	LedgerMissingRecord Failure = "ledger-missing-record"
)

// Ledger reads the instance ledger with the operator's credentials
// (OSSLedger in production).
type Ledger interface {
	// Where names the bucket and key prefix read.
	Where() (bucket, prefix string)
	// Check returns nil when the bucket can hold the ledger; an error
	// wrapping provision.ErrVersioned, ErrNotPrivate or ErrOtherRegion when
	// it cannot; any other error when it could not be read.
	Check(ctx context.Context) error
	// Load returns what the ledger holds for an instance.
	Load(ctx context.Context, region, instance string) (ledger.State, error)
}

// LedgerReport is what the ledger holds for the synthetic instance.
type LedgerReport struct {
	Bucket string `json:"bucket"`
	Prefix string `json:"prefix"`
	// Unfit says why the bucket cannot hold the ledger; CheckError why it
	// could not be checked. Both empty: the bucket is fit.
	Unfit      string `json:"unfit,omitempty"`
	CheckError string `json:"checkError,omitempty"`
	// Generation, State and the final record's fields: what the ledger
	// holds for the instance (Generation 0: nothing).
	Generation int    `json:"generation"`
	State      string `json:"state,omitempty"`
	Job        string `json:"jobId,omitempty"`
	Outcome    string `json:"outcome,omitempty"`
	Code       string `json:"code,omitempty"`
	Reason     string `json:"reason,omitempty"`
	// Error says why the instance's entries could not be read.
	Error string `json:"error,omitempty"`
}

// Record is the outcome record found in the logs (the fields of
// outcome.Record's log line that the verdict uses).
type Record struct {
	Msg        string `json:"msg"`
	InstanceID string `json:"instanceId"`
	JobID      string `json:"jobId"`
	Region     string `json:"region"`
	Outcome    string `json:"outcome"`
	Code       string `json:"code"`
	Reason     string `json:"reason"`
	TaskID     string `json:"taskId"`
}

// QueueReport is one queue's depth, or why it could not be read.
type QueueReport struct {
	Name  string `json:"name"`
	Role  string `json:"role"` // "jobs", "install" or "dead-letter"
	Depth *Depth `json:"depth,omitempty"`
	Error string `json:"error,omitempty"`
}

// Result is a smoke run's report.
type Result struct {
	Verdict    Verdict `json:"verdict"`
	Failure    Failure `json:"failure,omitempty"`
	Diagnosis  string  `json:"diagnosis"`
	InstanceID string  `json:"instanceId"`
	// Answer is the install function's answer to the invocation.
	Answer string `json:"answer,omitempty"`
	// Record is the outcome record, and Function the function that
	// logged it.
	Record   *Record `json:"record,omitempty"`
	Function string  `json:"function,omitempty"`
	// Ledger is what the ledger holds for the instance (nil: not read).
	Ledger  *LedgerReport `json:"ledger,omitempty"`
	Elapsed float64       `json:"elapsedSeconds"`
	Queues  []QueueReport `json:"queues,omitempty"`
}

func (c Config) withDefaults() Config {
	if c.Install == "" {
		c.Install = "install"
	}
	if len(c.LogFunctions) == 0 {
		c.LogFunctions = []string{"install", "poller"}
	}
	if c.InstanceID == "" {
		c.InstanceID = NewInstanceID()
	}
	if c.Timeout <= 0 {
		c.Timeout = 5 * time.Minute
	}
	if c.PollEvery <= 0 {
		c.PollEvery = 10 * time.Second
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Progress == nil {
		c.Progress = io.Discard
	}
	return c
}

// NewInstanceID returns "i-smoke" and 14 random lowercase letters and
// digits: a well-formed ECS instance id that no account holds.
func NewInstanceID() string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, 14)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return "i-smoke" + string(b)
}

// Event returns an ecs:Instance:StateChange CloudEvent saying that the
// instance is Running, stamped at now.
func Event(region, accountID, instanceID string, now time.Time) []byte {
	ev := map[string]any{
		"id":                "smoke-" + instanceID,
		"source":            "acs.ecs",
		"specversion":       "1.0",
		"type":              "ecs:Instance:StateChange",
		"subject":           fmt.Sprintf("acs:ecs:%s:%s:instance/%s", region, accountID, instanceID),
		"time":              now.Format(time.RFC3339),
		"aliyunregionid":    region,
		"aliyunpublishtime": now.UTC().Format("2006-01-02T15:04:05.000Z"),
		"data": map[string]any{
			"resourceId":   instanceID,
			"resourceType": "ALIYUN::ECS::Instance",
			"state":        "Running",
		},
	}
	if accountID != "" {
		ev["aliyunaccountid"] = accountID
	}
	b, _ := json.Marshal(ev) // a map of strings always marshals
	return b
}

// Run sends the event, waits for the outcome record and judges it, reads
// the ledger when cfg.Ledger is set (a bucket unfit for the ledger, or no
// ledger record behind a logged outcome, fails the run), then reads the
// queue depths (whatever the verdict, as a stuck queue or a growing
// dead-letter queue is worth seeing either way).
func Run(ctx context.Context, cfg Config, tr Transport) Result {
	cfg = cfg.withDefaults()
	start := cfg.Now()
	res := run(ctx, cfg, tr, start, Result{InstanceID: cfg.InstanceID})
	if cfg.Ledger != nil {
		res = checkLedger(ctx, cfg, res)
	}
	res.Queues = queues(ctx, cfg, tr)
	res.Elapsed = cfg.Now().Sub(start).Seconds()
	return res
}

func run(ctx context.Context, cfg Config, tr Transport, start time.Time, res Result) Result {
	// Logs are searched from a little before the invocation: the clocks of
	// this machine and of the log service differ a little.
	since := start.Add(-time.Minute)
	fmt.Fprintf(cfg.Progress, "invoking %s with a Running event for %s\n", cfg.Install, cfg.InstanceID)
	answer, err := tr.Invoke(ctx, cfg.Install, Event(cfg.Region, cfg.AccountID, cfg.InstanceID, start))
	res.Answer = strings.TrimSpace(string(answer))
	if err != nil {
		return invokeFailure(res, cfg, err)
	}
	fmt.Fprintf(cfg.Progress, "%s answered %s\n", cfg.Install, res.Answer)

	wait, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	tick := time.NewTicker(cfg.PollEvery)
	defer tick.Stop()
	var lastErr error
	ledgerLine := ""
	for {
		for _, fn := range cfg.LogFunctions {
			lines, err := tr.Logs(wait, fn, since, cfg.InstanceID)
			if err != nil {
				lastErr = fmt.Errorf("read the logs of %s: %w", fn, err)
				fmt.Fprintf(cfg.Progress, "%v\n", lastErr)
				continue
			}
			if rec, ok := FindRecord(lines, cfg.InstanceID); ok {
				res.Record, res.Function = &rec, fn
				return judge(res)
			}
			for _, l := range lines {
				if strings.Contains(l, cfg.InstanceID) && LedgerTrouble(l) {
					ledgerLine = fn + ": " + clip(strings.TrimSpace(l), 600)
				}
			}
		}
		fmt.Fprintf(cfg.Progress, "no outcome for %s in the logs of %s yet (%.0fs)\n",
			cfg.InstanceID, strings.Join(cfg.LogFunctions, ", "), cfg.Now().Sub(start).Seconds())
		select {
		case <-wait.Done():
			if ledgerLine != "" {
				res.Verdict, res.Failure = Fail, LedgerUnreachable
				res.Diagnosis = ledgerDiagnosis(ledgerBucket(cfg), "the functions' logs for "+cfg.InstanceID+" show it: "+ledgerLine)
				return res
			}
			res.Verdict, res.Failure = Fail, NoOutcome
			res.Diagnosis = fmt.Sprintf("no outcome record for %s in the logs of %s within %s: the install function accepted the event but nothing was recorded. Check that the functions have a logConfig (s.yaml), that the poller's trigger reads the job queue, and the functions' errors (s install logs, s poller logs)",
				cfg.InstanceID, strings.Join(cfg.LogFunctions, " and "), cfg.Timeout)
			if lastErr != nil {
				res.Diagnosis += fmt.Sprintf("; the last log read failed: %v", lastErr)
			}
			return res
		case <-tick.C:
		}
	}
}

func invokeFailure(res Result, cfg Config, err error) Result {
	fn := cfg.Install
	res.Verdict = Fail
	var fe *FunctionError
	switch {
	case errors.Is(err, ErrFunctionMissing):
		res.Failure = FunctionMissing
		res.Diagnosis = fmt.Sprintf("function %s is not deployed in this region: run make deploy (%v)", fn, err)
	case LedgerTrouble(err.Error()):
		res.Failure = LedgerUnreachable
		res.Diagnosis = ledgerDiagnosis(ledgerBucket(cfg), fmt.Sprintf("%s failed on it: %v", fn, err))
	case errors.Is(err, ErrInvocationDenied):
		res.Failure = InvocationDenied
		res.Diagnosis = fmt.Sprintf("not allowed to invoke %s: s needs credentials (s config add; alias default, or ARGS='-a <alias>') allowed fc:InvokeFunction, e.g. AliyunFCFullAccess (%v)", fn, err)
	case errors.As(err, &fe) && permissionCode(fe.Message):
		res.Failure = HBRPermissionDenied
		res.Diagnosis = fmt.Sprintf("%s failed with a permission error: the function role lacks a permission it needs; run make provision and check the role's policy (%v)", fn, err)
	case errors.As(err, &fe):
		res.Failure = InvocationFailed
		res.Diagnosis = fmt.Sprintf("%s returned an error: %v", fn, err)
	default:
		res.Failure = InvocationFailed
		res.Diagnosis = fmt.Sprintf("could not invoke %s: %v", fn, err)
	}
	return res
}

// checkLedger reads the ledger for the instance and folds what it finds
// into the verdict: a bucket unfit for the ledger fails the run, and so
// does a logged outcome the ledger read holds no final record of. A read
// that fails is reported without changing the verdict, except that it
// explains an unreachable ledger.
func checkLedger(ctx context.Context, cfg Config, res Result) Result {
	bucket, prefix := cfg.Ledger.Where()
	rep := &LedgerReport{Bucket: bucket, Prefix: prefix}
	res.Ledger = rep
	fmt.Fprintf(cfg.Progress, "reading the ledger in bucket %s for %s\n", bucket, cfg.InstanceID)
	if err := cfg.Ledger.Check(ctx); err != nil {
		if errors.Is(err, provision.ErrVersioned) || errors.Is(err, provision.ErrNotPrivate) || errors.Is(err, provision.ErrOtherRegion) {
			rep.Unfit = err.Error()
		} else {
			rep.CheckError = err.Error()
		}
	}
	st, err := cfg.Ledger.Load(ctx, cfg.Region, cfg.InstanceID)
	switch {
	case err != nil:
		rep.Error = err.Error()
	default:
		rep.Generation, rep.State = st.Generation, st.Describe()
		if st.Claim != nil {
			rep.Job = st.Claim.Job
		}
		if f := st.Final; f != nil {
			rep.Job, rep.Outcome, rep.Code, rep.Reason = f.Job, f.Outcome, f.Code, f.Reason
		}
	}

	fail := func(f Failure, diagnosis string) {
		if res.Verdict == Pass {
			res.Verdict, res.Failure, res.Diagnosis = Fail, f, diagnosis
			return
		}
		res.Diagnosis += "; also: " + diagnosis
	}
	switch {
	case rep.Unfit != "":
		fail(LedgerUnfit, fmt.Sprintf("the ledger bucket %s cannot hold the instance ledger: %s", bucket, rep.Unfit))
	case res.Failure == LedgerUnreachable && (rep.CheckError != "" || rep.Error != ""):
		res.Diagnosis += "; reading the ledger with your AccessKey failed too: " + firstNonEmpty(rep.CheckError, rep.Error)
	}
	if res.Record != nil && rep.Error == "" {
		switch {
		case rep.Generation == 0:
			fail(LedgerMissingRecord, fmt.Sprintf("%s logged %s for %s, but bucket %s holds no ledger entry for it under %s: the functions keep their ledger elsewhere (LEDGER_BUCKET, LEDGER_PREFIX differ from -ledger-bucket, -ledger-prefix), so make status would not see their records",
				res.Function, res.Record.Outcome, cfg.InstanceID, bucket, prefix))
		case rep.Outcome == "":
			fail(LedgerMissingRecord, fmt.Sprintf("%s logged %s for %s, but its ledger entry has no final record (%s): outcomes are recorded in the ledger before they are logged, so the functions keep their ledger elsewhere",
				res.Function, res.Record.Outcome, cfg.InstanceID, rep.State))
		case rep.Outcome != res.Record.Outcome && res.Verdict == Pass:
			res.Diagnosis += fmt.Sprintf("; note: the ledger's final record says %s (generation %d)", rep.Outcome, rep.Generation)
		}
	}
	return res
}

// ledgerBucket is the bucket cfg.Ledger reads, or "".
func ledgerBucket(cfg Config) string {
	if cfg.Ledger == nil {
		return ""
	}
	b, _ := cfg.Ledger.Where()
	return b
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

// ledgerRe matches what the functions' errors say when the instance ledger
// fails: the handler's "instance ledger" step, or an OSS operation of
// shared/ossstore ("oss.PutObject", "oss.ListObjectsV2", …).
var ledgerRe = regexp.MustCompile(`instance ledger|\boss\.[A-Z][A-Za-z0-9]+`)

// LedgerTrouble reports whether a function's error or log line says that
// the instance ledger failed.
func LedgerTrouble(s string) bool { return ledgerRe.MatchString(s) }

// ledgerDiagnosis explains a failure on the ledger; bucket is the bucket
// the operator's Ledger names ("" when there is none).
func ledgerDiagnosis(bucket, evidence string) string {
	if bucket != "" {
		bucket = " " + bucket
	}
	return "the functions cannot reach the ledger bucket" + bucket + ", where the instance ledger decides who installs each instance " +
		"(LEDGER_BUCKET, by default hbr-autoinstall-ledger-<account>-<region> in the functions' region; OSS_ENDPOINT; " +
		"the role's oss: permissions on LEDGER_PREFIX — run make provision, which creates the bucket and grants them): " + evidence
}

// judge turns the record into a verdict.
func judge(res Result) Result {
	r := res.Record
	switch {
	case r.Outcome == "GONE":
		res.Verdict = Pass
		res.Diagnosis = fmt.Sprintf("%s recorded GONE for %s: the function role's credentials, its HBR permission, the HBR endpoint and the log path work", res.Function, res.InstanceID)
	case permissionCode(r.Code) || permissionCode(r.Reason):
		res.Verdict, res.Failure = Fail, HBRPermissionDenied
		res.Diagnosis = fmt.Sprintf("HBR refused the function role (outcome %s, code %s: %s): attach the policy with hbr:InstallBackupClients, hbr:DescribeTask and hbr:DescribeBackupClients to the role (make provision)", r.Outcome, r.Code, r.Reason)
	default:
		res.Verdict, res.Failure = Fail, UnexpectedOutcome
		res.Diagnosis = fmt.Sprintf("outcome %s (code %q, reason %q) for an instance that does not exist; GONE was expected: check HBR_ENDPOINT and the region", r.Outcome, r.Code, r.Reason)
	}
	return res
}

// permissionCode reports whether an error code or message says the caller
// lacks a permission (Forbidden.RAM, NoPermission, AccessDenied, …).
func permissionCode(s string) bool {
	s = strings.ToLower(s)
	for _, w := range []string{"forbidden", "nopermission", "accessdenied", "notauthorized", "unauthorized"} {
		if strings.Contains(s, w) {
			return true
		}
	}
	return false
}

// FindRecord returns the first outcome record for instanceID among log
// lines. A line may carry a prefix (a time stamp, an FC instance id, colour
// codes) before the JSON object the function wrote.
func FindRecord(lines []string, instanceID string) (Record, bool) {
	for _, line := range lines {
		if !strings.Contains(line, instanceID) {
			continue
		}
		for i := strings.IndexByte(line, '{'); i >= 0; {
			dec := json.NewDecoder(bytes.NewReader([]byte(line[i:])))
			var r Record
			if dec.Decode(&r) == nil && r.Msg == "outcome" && r.InstanceID == instanceID {
				return r, true
			}
			j := strings.IndexByte(line[i+1:], '{')
			if j < 0 {
				break
			}
			i += 1 + j
		}
	}
	return Record{}, false
}

func queues(ctx context.Context, cfg Config, tr Transport) []QueueReport {
	var out []QueueReport
	for _, q := range []struct{ name, role string }{{cfg.Queue, "jobs"}, {cfg.InstallQueue, "install"}, {cfg.DLQ, "dead-letter"}} {
		if q.name == "" {
			continue
		}
		rep := QueueReport{Name: q.name, Role: q.role}
		d, err := tr.QueueDepth(ctx, q.name)
		if err != nil {
			rep.Error = err.Error()
		} else {
			rep.Depth = &d
		}
		out = append(out, rep)
	}
	return out
}

// Write prints the report for a person.
func (r Result) Write(w io.Writer) {
	fmt.Fprintf(w, "%s  %s\n", r.Verdict, r.Diagnosis)
	fmt.Fprintf(w, "  instance  %s\n", r.InstanceID)
	if r.Answer != "" {
		fmt.Fprintf(w, "  answer    %s\n", r.Answer)
	}
	if r.Record != nil {
		fmt.Fprintf(w, "  outcome   %s", r.Record.Outcome)
		if r.Record.Code != "" {
			fmt.Fprintf(w, " (%s)", r.Record.Code)
		}
		if r.Record.Reason != "" {
			fmt.Fprintf(w, ": %s", r.Record.Reason)
		}
		fmt.Fprintf(w, ", logged by %s\n", r.Function)
	}
	if l := r.Ledger; l != nil {
		fmt.Fprintf(w, "  ledger    bucket %s, prefix %s: ", l.Bucket, l.Prefix)
		switch {
		case l.Unfit != "":
			fmt.Fprintf(w, "UNFIT: %s\n", l.Unfit)
		case l.CheckError != "":
			fmt.Fprintf(w, "not checked: %s\n", l.CheckError)
		default:
			fmt.Fprintln(w, "private, not versioned, in the region")
		}
		switch {
		case l.Error != "":
			fmt.Fprintf(w, "  ledger    %s: not read: %s\n", r.InstanceID, l.Error)
		case l.Outcome != "":
			fmt.Fprintf(w, "  ledger    %s: generation %d final %s", r.InstanceID, l.Generation, l.Outcome)
			if l.Code != "" {
				fmt.Fprintf(w, " (%s)", l.Code)
			}
			fmt.Fprintf(w, ", recorded by %s\n", l.Job)
		default:
			fmt.Fprintf(w, "  ledger    %s: %s\n", r.InstanceID, l.State)
		}
	}
	fmt.Fprintf(w, "  elapsed   %.1fs\n", r.Elapsed)
	for _, q := range r.Queues {
		switch {
		case q.Depth == nil:
			fmt.Fprintf(w, "  queue     %s (%s): depth unknown: %s\n", q.Name, q.Role, q.Error)
		default:
			note := ""
			if q.Role == "dead-letter" && q.Depth.Total() > 0 {
				note = "  ← events or messages that failed every retry: read them in the MNS console"
			}
			fmt.Fprintf(w, "  queue     %s (%s): %d visible, %d delayed, %d in flight%s\n",
				q.Name, q.Role, q.Depth.Visible, q.Depth.Delayed, q.Depth.InFlight, note)
		}
	}
}
