// Command install is the Function Compute (runtime go1) function that
// installs the HBR backup client on new ECS instances. It takes EventBridge
// ECS events (RunInstances, StateChange Running, Cloud Assistant's first
// heartbeat) and batches of its install queue; it claims each instance in
// the instance ledger, calls InstallBackupClients itself (at most 20
// instances a call) for those it owns, and hands each task to the poller
// with a delayed poll message. It only wires: configuration, logger and
// cloud clients in, handler.Install out.
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
