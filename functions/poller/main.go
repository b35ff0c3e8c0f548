// Command poller is the Function Compute (runtime go1) function behind the MNS
// queue trigger: it follows HBR install tasks to an outcome per instance and
// retries installs; it also runs the further parts of a reconcile sweep
// (sweep continuation messages). It only wires: configuration, logger and cloud clients
// in, handler.Poller out.
package main

import (
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/config"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/handler"
)

func main() {
	handler.Start(func(cfg config.Config, d handler.Deps) any {
		p := handler.NewPoller(d)
		p.Sweep = handler.NewReconcile(d, cfg.ReconcileRate, cfg.ReconcileMax)
		return p.Handle
	})
}
