// Command nopfn is the smallest function worth benchmarking fcsim with: it
// writes one JSON log line, as the project's functions do at least once per
// invocation, and answers {"ok":true}. With it the cost of an invocation is
// nearly all on the emulator's side.
package main

import (
	"context"
	"encoding/json"
	"os"

	"github.com/aliyun/fc-runtime-go-sdk/fc"
	"github.com/aliyun/fc-runtime-go-sdk/fccontext"
)

var ok = json.RawMessage(`{"ok":true}`)

func handle(ctx context.Context, _ json.RawMessage) (json.RawMessage, error) {
	id := ""
	if fctx, found := fccontext.FromContext(ctx); found {
		id = fctx.RequestID
	}
	_, _ = os.Stdout.WriteString(`{"level":"INFO","msg":"handled","requestId":"` + id + "\"}\n")
	return ok, nil
}

func main() {
	fc.Start(handle)
}
