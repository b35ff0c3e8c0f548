# hbr-autoinstall: build, test and deploy the install, poller and reconcile
# functions.
# `make help` lists the targets; variables can be set on the command line,
# e.g. `make deploy REGIONS=cn-beijing` or `make fuzz FUZZTIME=1m`.

SHELL       := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
MAKEFLAGS   += --no-print-directory

GO       ?= go
# Serverless Devs CLI: `make tools` installs this pinned version from npm into
# $(TOOLS) (git-ignored); `make test` renders s.yaml with it. deploy, invoke-*
# and smoke use a global `s` when there is one, else the pinned one.
S_VERSION ?= 3.1.10
TOOLS    ?= .tools
S_LOCAL  := $(TOOLS)/node_modules/.bin/s
S_STAMP  := $(TOOLS)/.serverless-devs-s-$(S_VERSION)
ifeq ($(origin S),undefined)
S := $(if $(shell command -v s 2>/dev/null),s,$(S_LOCAL))
endif
# The pinned s is installed first when S is it.
S_DEP     = $(if $(filter $(S_LOCAL),$(S)),tools)
# Functions to build: each is ./functions/<fn>, built to dist/<fn>/main, which
# s.yaml deploys with `code: ./dist/<fn>` and `handler: main`.
FUNCTIONS ?= install poller reconcile
DIST     ?= dist
# Regions to provision and deploy. EventBridge rules and MNS queues are
# regional, so the whole stack is deployed once per region.
REGIONS  ?= cn-hangzhou cn-shanghai
# Resource names; s.yaml reads the same environment variables with the same
# defaults.
QUEUE_NAME  ?= hbr-autoinstall-jobs
INSTALL_QUEUE_NAME ?= hbr-autoinstall-installs
DLQ_NAME    ?= hbr-autoinstall-dlq
ROLE_NAME   ?= hbr-autoinstall-fc
POLICY_NAME ?= hbr-autoinstall-fc-policy
# The instance ledger: its key prefix, and its bucket. The bucket is one per
# region, hbr-autoinstall-ledger-<account>-<region> unless LEDGER_BUCKET sets
# a pattern ({account} and {region} are replaced; without {region} only one
# region can use it).
LEDGER_PREFIX ?= hbr-autoinstall/ledger/
LEDGER_BUCKET ?=
# provision and smoke take the same two flags.
LEDGER_FLAGS = -ledger-prefix '$(LEDGER_PREFIX)' $(if $(LEDGER_BUCKET),-ledger-bucket '$(LEDGER_BUCKET)')
# fc3 stops deploying a function's triggers at the first unchanged eventbridge
# trigger, so a changed trigger listed after it would be skipped silently.
# Every eventbridge trigger that is not the first of its function is listed
# here as <resource>:<trigger> and deployed once more on its own.
EXTRA_TRIGGERS ?= install:ecs-runinstances install:install-queue
# Extra arguments for demo, bench, chaos, provision, deploy and smoke.
ARGS     ?=
# Resource (s.yaml) that make invoke-<event> invokes; by default the poller
# for events/poller-*.json and the install function for the others.
FN       ?=
FUZZTIME ?= 10s
# Payload make invoke-reconcile sends: a dry run (a report, nothing queued)
# unless overridden; RECONCILE_EVENT='{}' runs a real sweep by hand.
RECONCILE_EVENT ?= {"dryRun":true}
# Fuzz targets as <package under shared/>:<FuzzFunc>.
FUZZ_TARGETS ?= ecsevent:FuzzParse job:FuzzDecode queueevent:FuzzParse

BUILD_ENV := GOOS=linux GOARCH=amd64 CGO_ENABLED=0
LDFLAGS   := -s -w -buildid=
# Names passed to s.yaml (see its vars).
S_ENV = QUEUE_NAME=$(QUEUE_NAME) INSTALL_QUEUE_NAME=$(INSTALL_QUEUE_NAME) DLQ_NAME=$(DLQ_NAME) \
	ROLE_NAME=$(ROLE_NAME) LEDGER_PREFIX=$(LEDGER_PREFIX)

.PHONY: help build tools test lint demo bench chaos fuzz provision deploy invoke-reconcile smoke status clean

help: ## List the targets
	@echo "Usage: make <target> [VAR=value ...]"
	@echo
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_%-]+:.*## / {printf "  %-18s %s\n", $$1, $$2}' $(MAKEFILE_LIST)
	@echo
	@echo "Variables: FUNCTIONS='$(FUNCTIONS)' REGIONS='$(REGIONS)' FUZZTIME=$(FUZZTIME) ARGS='$(ARGS)'"

build: $(addprefix build-,$(FUNCTIONS)) ## Build every function for FC (linux/amd64) into dist/<fn>/main

build-%:
	$(BUILD_ENV) $(GO) build -trimpath -ldflags='$(LDFLAGS)' -o $(DIST)/$*/main ./functions/$*

tools: $(S_STAMP) ## Install the pinned Serverless Devs CLI (S_VERSION) into .tools/ with npm (once)

$(S_STAMP):
	@command -v npm >/dev/null || { echo "make tools: npm not found; install Node.js (with npm)" >&2; exit 1; }
	npm install --prefix $(TOOLS) --no-save --no-package-lock --no-audit --no-fund --loglevel=error \
		@serverless-devs/s@$(S_VERSION)
	@test -x $(S_LOCAL) || { echo "make tools: $(S_LOCAL) was not installed" >&2; exit 1; }
	@rm -f $(TOOLS)/.serverless-devs-s-*
	@touch $@

test: tools ## gofmt check, go vet and every test with -race (end-to-end tests build the binaries themselves; s.yaml is rendered by the pinned s)
	@unformatted="$$(gofmt -l .)"; \
	if [ -n "$$unformatted" ]; then echo "gofmt would change these files:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...
	DEPLOYCHECK_S=$(abspath $(S_LOCAL)) $(GO) test -race -count=1 ./...

lint: ## gofmt check, go vet, and go.mod/go.sum tidiness (read-only)
	@unformatted="$$(gofmt -l .)"; \
	if [ -n "$$unformatted" ]; then echo "gofmt would change these files:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...
	$(GO) mod tidy -diff

demo: ## Run the whole system against the local cloud (go run ./scripts/demo $(ARGS))
	$(GO) run ./scripts/demo $(ARGS)

bench: ## Throughput benchmark against the local cloud (go run ./scripts/bench $(ARGS))
	@test -d scripts/bench || { echo "make bench: scripts/bench does not exist yet" >&2; exit 1; }
	$(GO) run ./scripts/bench $(ARGS)

chaos: ## Fault-injection run against the local cloud (go run ./scripts/chaos $(ARGS))
	@test -d scripts/chaos || { echo "make chaos: scripts/chaos does not exist yet" >&2; exit 1; }
	$(GO) run ./scripts/chaos $(ARGS)

fuzz: ## Short fuzz runs of the event, queue-event and job parsers (FUZZTIME=10s each)
	@for t in $(FUZZ_TARGETS); do \
		echo "== ./shared/$${t%%:*} $${t#*:}"; \
		$(GO) test -run='^$$' -fuzz="^$${t#*:}\$$" -fuzztime=$(FUZZTIME) ./shared/$${t%%:*}; \
	done

provision: ## Create or update the RAM role, its policy, the MNS queues and the ledger bucket in REGIONS (ARGS=-dry-run to preview; -tag-writeback, -topic NAME, -bind add permissions; -ledger-expiry-days N)
	$(GO) run ./scripts/provision -regions '$(REGIONS)' -queue '$(QUEUE_NAME)' -install-queue '$(INSTALL_QUEUE_NAME)' \
		-dlq '$(DLQ_NAME)' -role '$(ROLE_NAME)' -policy-name '$(POLICY_NAME)' $(LEDGER_FLAGS) $(ARGS)

deploy: $(S_DEP) ## s deploy -y once per region in REGIONS (a global s, else the pinned one in .tools/)
	for region in $(REGIONS); do \
		REGION=$$region $(S_ENV) $(S) deploy -y $(ARGS); \
		for t in $(EXTRA_TRIGGERS); do \
			REGION=$$region $(S_ENV) $(S) $${t%%:*} deploy -y --trigger $${t#*:} $(ARGS); \
		done; \
	done

# make invoke-<name> invokes a deployed function with events/<name>.json, in
# the first region of REGIONS: the poller for poller-* events, otherwise the
# install function (FN= overrides).
invoke-%: $(S_DEP) ## Invoke a deployed function with events/<name>.json (poller-* → poller, others → install; FN= overrides)
	@test -f events/$*.json || { echo "make invoke-$*: events/$*.json does not exist" >&2; exit 1; }
	REGION=$(firstword $(REGIONS)) $(S_ENV) $(S) $(or $(FN),$(if $(filter poller-%,$*),poller,install)) invoke --event-file events/$*.json

invoke-reconcile: $(S_DEP) ## Run the deployed reconcile sweep by hand in the first region of REGIONS (a dry run; RECONCILE_EVENT='{}' queues installs)
	REGION=$(firstword $(REGIONS)) $(S_ENV) $(S) reconcile invoke -e '$(RECONCILE_EVENT)'

smoke: $(S_DEP) ## Check the deployed stack in each of REGIONS: a synthetic event must end GONE, through the ledger; with your AccessKey, reads its ledger record and the queue depths (ARGS=-h for flags)
	@failed=0; for region in $(REGIONS); do \
		$(S_ENV) $(GO) run ./scripts/smoke -s '$(S)' -region $$region -queue '$(QUEUE_NAME)' -install-queue '$(INSTALL_QUEUE_NAME)' \
			-dlq '$(DLQ_NAME)' $(LEDGER_FLAGS) $(ARGS) || failed=1; \
	done; exit $$failed

status: ## Print the instance ledger of the first of REGIONS with your AccessKey: each instance's state, the counts, what is not protected (ARGS=-region R, -json, -policy-expected)
	$(GO) run ./scripts/status -region '$(firstword $(REGIONS))' -prefix '$(LEDGER_PREFIX)' \
		$(if $(LEDGER_BUCKET),-bucket '$(LEDGER_BUCKET)') $(ARGS)

clean: ## Remove build and coverage output (not the tools in .tools/)
	rm -rf $(DIST) coverage.out coverage.html

# print-VAR prints a variable's value (used by the s.yaml consistency test).
print-%:
	@echo '$($*)'
