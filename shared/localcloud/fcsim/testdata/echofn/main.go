// Command echofn is the test function fcsim runs: it echoes what it was
// handed and misbehaves on demand (error, panic, sleep, exit).
//
// The input is a JSON object {"action", "sleep": "<duration>", "code", "file", "until"};
// actions: "echo" (default), "error" (fails while the retry count is below
// "until", or always when until is 0), "panic", "sleep" (sleeps, ignoring the
// deadline), "exit" (os.Exit(code) mid-invocation), "waitfile" (echoes once
// the file exists, or fails at the deadline). Any other input is echoed.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/aliyun/fc-runtime-go-sdk/fc"
	"github.com/aliyun/fc-runtime-go-sdk/fccontext"
)

type request struct {
	Action string `json:"action"`
	Sleep  string `json:"sleep"`
	Code   int    `json:"code"`
	File   string `json:"file"`
	Until  int    `json:"until"`
}

// reply is what the echo action returns: what the function saw.
type reply struct {
	Payload         json.RawMessage   `json:"payload"`
	RequestID       string            `json:"requestId"`
	DeadlineUnixMS  int64             `json:"deadlineUnixMs"`
	HasDeadline     bool              `json:"hasDeadline"`
	AccessKeyID     string            `json:"accessKeyId"`
	AccessKeySecret string            `json:"accessKeySecret"`
	SecurityToken   string            `json:"securityToken"`
	Region          string            `json:"region"`
	AccountID       string            `json:"accountId"`
	RetryCount      int               `json:"retryCount"`
	FunctionName    string            `json:"functionName"`
	Handler         string            `json:"handler"`
	Memory          string            `json:"memory"`
	TimeoutSeconds  int               `json:"timeoutSeconds"`
	PID             int               `json:"pid"`
	Env             map[string]string `json:"env"`
}

var envKeys = []string{
	"FC_RUNTIME_API", "FC_REGION", "FC_ACCOUNT_ID", "FC_FUNCTION_NAME", "FC_FUNCTION_HANDLER",
	"FC_FUNCTION_MEMORY_SIZE", "ALIBABA_CLOUD_ACCESS_KEY_ID", "ALIBABA_CLOUD_ACCESS_KEY_SECRET",
	"ALIBABA_CLOUD_SECURITY_TOKEN", "ECHOFN_EXTRA", "HOME", "PATH", "TMPDIR",
}

func handle(ctx context.Context, in json.RawMessage) (any, error) {
	var req request
	// Anything that is not a control object (an array from an event stream,
	// say) is echoed.
	_ = json.Unmarshal(in, &req)
	fctx, _ := fccontext.FromContext(ctx)
	line, _ := json.Marshal(map[string]string{"level": "INFO", "requestId": fctx.RequestID, "action": req.Action})
	fmt.Println(string(line))
	fmt.Fprintln(os.Stderr, "stderr line for", fctx.RequestID)

	switch req.Action {
	case "error":
		if req.Until == 0 || fctx.RetryCount < req.Until {
			return nil, errors.New("failed on demand")
		}
	case "panic":
		panic("panicked on demand")
	case "exit":
		os.Exit(req.Code)
	case "sleep":
		d, err := time.ParseDuration(req.Sleep)
		if err != nil {
			return nil, fmt.Errorf("parse sleep: %w", err)
		}
		time.Sleep(d)
	case "waitfile":
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for {
			if _, err := os.Stat(req.File); err == nil {
				break
			}
			select {
			case <-ctx.Done():
				return nil, fmt.Errorf("wait for %s: %w", req.File, ctx.Err())
			case <-tick.C:
			}
		}
	}

	r := reply{
		Payload:         in,
		RequestID:       fctx.RequestID,
		AccessKeyID:     fctx.Credentials.AccessKeyId,
		AccessKeySecret: fctx.Credentials.AccessKeySecret,
		SecurityToken:   fctx.Credentials.SecurityToken,
		Region:          fctx.Region,
		AccountID:       fctx.AccountId,
		RetryCount:      fctx.RetryCount,
		FunctionName:    fctx.Function.Name,
		Handler:         fctx.Function.Handler,
		Memory:          fctx.Function.Memory,
		TimeoutSeconds:  fctx.Function.Timeout,
		PID:             os.Getpid(),
		Env:             map[string]string{},
	}
	if dl, ok := ctx.Deadline(); ok {
		r.HasDeadline = true
		r.DeadlineUnixMS = dl.UnixMilli()
	}
	for _, k := range envKeys {
		if v, ok := os.LookupEnv(k); ok {
			r.Env[k] = v
		}
	}
	return r, nil
}

func main() {
	fc.Start(handle)
}
