// Command poller is the Function Compute (runtime go1) function behind the
// job queue's trigger: it follows HBR install tasks (DescribeTask, again
// every POLL_INTERVAL) to an outcome per instance, which it records in the
// instance ledger and logs; it hands reinstalls back to the install
// function and never installs. It also runs the further parts of a
// reconcile sweep (sweep continuation messages). It only wires:
// configuration, logger and cloud clients in, handler.Poller out.
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
