// Command minimal is the reference for `make bench`: the smallest Function
// Compute go1 function there is. The install and poller binaries' cold start
// and size are reported as ratios to this one, built with the same flags in
// the same run.
package main

import (
	"context"

	"github.com/aliyun/fc-runtime-go-sdk/fc"
)

func main() {
	fc.Start(func(ctx context.Context, b []byte) (string, error) { return "ok", nil })
}
