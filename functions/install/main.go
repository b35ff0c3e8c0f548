// Command install is the Function Compute (runtime go1) function that reacts
// to EventBridge ECS events by installing the HBR backup client on new
// instances. It only wires: configuration, logger and cloud clients in,
// handler.Install out.
package main

import (
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/config"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/handler"
)

func main() {
	handler.Start(func(_ config.Config, d handler.Deps) any {
		return handler.NewInstall(d).Handle
	})
}
