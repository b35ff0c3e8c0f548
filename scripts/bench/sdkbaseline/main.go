// Command sdkbaseline is the second reference of `make bench`: a Function
// Compute go1 function that links the same three SDKs as the functions —
// fc-runtime-go-sdk, the alibaba-cloud-sdk-go core and aliyun-mns-go-sdk —
// and does no work. Its cold start and size are what the project does not
// control; the functions' ratios to it (cold_start_ratio_vs_sdk_baseline,
// binary_size_ratio_vs_sdk_baseline) are what the project's own code costs.
package main

import (
	"context"

	"github.com/aliyun/alibaba-cloud-sdk-go/sdk"
	"github.com/aliyun/alibaba-cloud-sdk-go/sdk/requests"
	ali_mns "github.com/aliyun/aliyun-mns-go-sdk"
	"github.com/aliyun/fc-runtime-go-sdk/fc"
)

// linked keeps the SDK entry points the functions use in the binary (and
// so their packages' initialisation in its start-up), without calling them.
var linked = []any{sdk.NewClientWithStsToken, requests.NewCommonRequest, ali_mns.NewAliMNSClientWithConfig, ali_mns.NewMNSQueue}

func main() {
	fc.Start(func(ctx context.Context, b []byte) (string, error) {
		_ = linked
		return "ok", nil
	})
}
