package smoke

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"regexp"
	"strings"
	"time"
)

// ServerlessDevs is the Transport of a deployed stack: the Serverless Devs
// CLI, run in the project directory so that it finds the stack in s.yaml
// (`s <resource> invoke`, `s <resource> logs`; fc3 component). Queue depths
// come from Queues, as s has no MNS command.
type ServerlessDevs struct {
	// S is the CLI to run ("s", or .tools/node_modules/.bin/s).
	S string
	// Dir holds the template; Template defaults to "s.yaml".
	Dir, Template string
	// Env is the CLI's whole environment (REGION, QUEUE_NAME, … as for
	// make deploy, plus PATH and HOME).
	Env []string
	// Args are added to every command (e.g. "-a", "<alias>").
	Args []string
	// Queues reads queue depths; nil reports them as unknown.
	Queues interface {
		Depth(ctx context.Context, queue string) (Depth, error)
	}
	// Now is the clock for the logs' time window (default time.Now).
	Now func() time.Time
	// Exec runs a command and returns its stdout and stderr (default:
	// os/exec); tests replace it.
	Exec func(ctx context.Context, dir string, env []string, name string, args ...string) (stdout, stderr []byte, err error)
}

func (s *ServerlessDevs) run(ctx context.Context, args ...string) (string, error) {
	tmpl := s.Template
	if tmpl == "" {
		tmpl = "s.yaml"
	}
	args = append(append(args, "-t", tmpl), s.Args...)
	run := s.Exec
	if run == nil {
		run = execCommand
	}
	stdout, stderr, err := run(ctx, s.Dir, s.Env, s.S, args...)
	out := stripANSI(string(stdout))
	if err != nil {
		text := strings.TrimSpace(stripANSI(string(stderr)) + "\n" + out)
		return out, classifyCLI(fmt.Errorf("%s %s: %w: %s", s.S, strings.Join(args[:2], " "), err, clip(text, 2000)), text)
	}
	return out, nil
}

func execCommand(ctx context.Context, dir string, env []string, name string, args ...string) ([]byte, []byte, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	return stdout.Bytes(), stderr.Bytes(), err
}

// Error codes in the CLI's output that Run diagnoses: FC's FunctionNotFound,
// and the ways a caller is refused (RAM denial, bad or expired keys, or no
// credentials at all: s then cannot render ${config('AccountID')}).
var (
	missingRe = regexp.MustCompile(`FunctionNotFound`)
	deniedRe  = regexp.MustCompile(`AccessDenied|Forbidden|NoPermission|InvalidAccessKeyId|SignatureDoesNotMatch|InvalidSecurityToken|is not authorized|config\('AccountID'\) not found`)
)

func classifyCLI(err error, text string) error {
	switch {
	case missingRe.MatchString(text):
		return fmt.Errorf("%w: %w", ErrFunctionMissing, err)
	case LedgerTrouble(text):
		// The function ran and failed on the ledger (an OSS AccessDenied
		// there is the role's, not the caller's).
		return err
	case deniedRe.MatchString(text):
		return fmt.Errorf("%w: %w", ErrInvocationDenied, err)
	}
	return err
}

// Invoke runs `s <function> invoke -e <payload>` (a synchronous call of the
// deployed function's LATEST version) and returns the "Invoke Result" the
// CLI prints; a function error (the CLI's "Error Type") is a
// *FunctionError.
func (s *ServerlessDevs) Invoke(ctx context.Context, function string, payload []byte) ([]byte, error) {
	out, err := s.run(ctx, function, "invoke", "-e", string(payload))
	if err != nil {
		return nil, err
	}
	errType := ""
	if _, after, ok := strings.Cut(out, "Error Type:"); ok {
		errType, _, _ = strings.Cut(after, "\n")
		errType = strings.TrimSpace(errType)
	}
	body := out
	if _, after, ok := strings.Cut(out, "Invoke Result:"); ok {
		body = after
	}
	body = strings.TrimSpace(body)
	if errType != "" {
		return nil, &FunctionError{Type: errType, Message: body}
	}
	return []byte(body), nil
}

// Logs runs `s <function> logs -s <since> -e <now> --search <search>`,
// which queries the function's SLS logstore, and returns its lines.
func (s *ServerlessDevs) Logs(ctx context.Context, function string, since time.Time, search string) ([]string, error) {
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	out, err := s.run(ctx, function, "logs",
		"-s", since.UTC().Format(time.RFC3339), "-e", now().Add(time.Minute).UTC().Format(time.RFC3339),
		"--search", search)
	if err != nil {
		return nil, err
	}
	return strings.Split(out, "\n"), nil
}

// QueueDepth reads the depth through Queues.
func (s *ServerlessDevs) QueueDepth(ctx context.Context, queue string) (Depth, error) {
	if s.Queues == nil {
		return Depth{}, errors.New("not read: set ALIBABA_CLOUD_ACCESS_KEY_ID and ALIBABA_CLOUD_ACCESS_KEY_SECRET (as for make provision) to read queue depths")
	}
	return s.Queues.Depth(ctx, queue)
}

var ansiRe = regexp.MustCompile(`\x1b\[[0-9;]*[A-Za-z]`)

func stripANSI(s string) string { return ansiRe.ReplaceAllString(s, "") }

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "") + "…"
}
