// Command reconcile is the Function Compute (runtime go1) function behind the
// reconcile sweep: on its timer trigger (daily by default) or a manual invoke
// it lists the region's running instances, leaves out those with an
// ACTIVATED backup client or out of scope, and queues install jobs for the
// rest, which the poller then drives like any other; it returns and logs a
// coverage report ({"dryRun":true} only reports). It only wires:
// configuration, logger and cloud clients in, handler.Reconcile out.
package main

import (
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/config"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/handler"
)

func main() {
	handler.Start(func(cfg config.Config, d handler.Deps) any {
		return handler.NewReconcile(d, cfg.ReconcileRate, cfg.ReconcileMax).Handle
	})
}
