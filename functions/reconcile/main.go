// Command reconcile is the Function Compute (runtime go1) function behind the
// reconcile sweep: on its timer trigger (daily by default) or a manual invoke
// it lists the region's running instances, leaves out those with an
// ACTIVATED (and, with a backup policy, bound) client or out of scope,
// finds the instance ledger's claims whose lease passed with no record, and
// queues install work for the rest on the install queue; it returns and
// logs a coverage report ({"dryRun":true} only reports). It only wires:
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
