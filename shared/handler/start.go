package handler

import (
	"log/slog"
	"os"

	"github.com/aliyun/fc-runtime-go-sdk/fc"

	"github.com/hbr-autoinstall/hbr-autoinstall/shared/config"
	"github.com/hbr-autoinstall/hbr-autoinstall/shared/fclog"
)

// Start is every function's main: it loads the configuration from the
// environment, builds the dependencies all functions share (SDK-backed cloud
// clients, the JSON logger, jittered back-off) and passes the handler that
// build returns to fc.Start. A function whose configuration does not load
// answers every invocation with that error instead of crash-looping. Start
// never returns.
func Start(build func(cfg config.Config, d Deps) any) {
	cfg, err := config.Load(os.Getenv)
	if err != nil {
		log := fclog.New(os.Stdout, "info")
		log.Error("configuration", slog.String("error", err.Error()))
		fc.Start(Misconfigured(log, err))
		return
	}
	d := DepsFrom(cfg)
	d.Cloud = SDKCloud{Config: cfg, Getenv: os.Getenv}
	d.Logger = fclog.New(os.Stdout, cfg.LogLevel)
	d.Jitter = FullJitter
	d.Function = os.Getenv("FC_FUNCTION_NAME")
	fc.Start(build(cfg, d))
}
