// Command poller is the Function Compute (runtime go1) function behind the MNS
// queue trigger: it follows HBR install tasks to an outcome per instance and
// retries installs. It only wires: configuration, logger and cloud clients
// in, handler.Poller out.
package main

import (
	"log/slog"
	"os"

	"github.com/aliyun/fc-runtime-go-sdk/fc"

	"github.com/hbr-autoinstall/hbr-autoinstall/shared/config"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/fclog"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/handler"
)

func main() {
	cfg, err := config.Load(os.Getenv)
	if err != nil {
		log := fclog.New(os.Stdout, "info")
		log.Error("configuration", slog.String("error", err.Error()))
		fc.Start(handler.Misconfigured(log, err))
		return
	}
	d := handler.DepsFrom(cfg)
	d.Cloud = handler.SDKCloud{Config: cfg, Getenv: os.Getenv}
	d.Logger = fclog.New(os.Stdout, cfg.LogLevel)
	d.Jitter = handler.FullJitter
	h := handler.NewPoller(d)
	fc.Start(h.Handle)
}
