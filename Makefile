# simworker: the two commands that set everything up on a fresh machine with Go
# are `make run` (all-in-one dev) and `make test` (the whole suite).
SHELL := /bin/bash
GO    ?= go
NATS_CLI_VERSION := v0.5.0

.PHONY: all build run docs test test-short chaos soak bench bench-go fuzz lint fmt postgres chromium nats-cli validate-docs clean

all: build

build:
	$(GO) build -o bin/ ./cmd/...

## run: simworker dev (in-process NATS + JetStream, private PostgreSQL, demo data, the worker, the API);
## the nats CLI installs in the background meanwhile (the API's curl needs none)
run: postgres
	@$(MAKE) -s nats-cli >/dev/null 2>&1 &
	@echo "building simworker and simctl (the first build fetches and compiles the dependencies: a minute or two)..."
	$(GO) build -o bin/ ./cmd/simworker ./cmd/simctl
	./bin/simworker dev

## test: vet, then every test with the race detector against real PostgreSQL and JetStream,
## the fault suite included (its table is printed at the end), the API reference in headless Chromium
test: postgres chromium
	$(GO) vet ./...
	@mkdir -p bin && rm -f bin/fault-table.txt bin/soak-table.txt
	SIM_FAULT_TABLE=$(CURDIR)/bin/fault-table.txt SIM_SOAK_TABLE=$(CURDIR)/bin/soak-table.txt SIM_SOAK_DURATION=1m \
	  $(GO) test -race -count=1 -timeout 40m ./...
	./scripts/validate-docs.sh
	@echo "fault suite:" && cat bin/fault-table.txt
	@echo "soak (1 minute):" && cat bin/soak-table.txt

## chaos: the fault suite, longer: more commands, more worker kills
chaos: postgres
	@mkdir -p bin
	SIM_FAULT_TABLE=$(CURDIR)/bin/fault-table.txt SIM_FAULT_COMMANDS=$${SIM_FAULT_COMMANDS:-20000} SIM_FAULT_ROUNDS=$${SIM_FAULT_ROUNDS:-12} \
	  $(GO) test -count=1 -v -timeout 60m -run TestFaultSuite ./e2e/
	@cat bin/fault-table.txt

## soak: the randomized fault run (a nemesis): a steady load through NATS and the API while a seeded
## schedule overlaps faults; SOAK_DURATION (10m) and SOAK_SEED (random; a failure prints the one to reuse)
SOAK_DURATION ?= 10m
SOAK_SEED ?=
soak: postgres
	@mkdir -p bin
	SIM_SOAK_TABLE=$(CURDIR)/bin/soak-table.txt SIM_SOAK_DURATION=$(SOAK_DURATION) SIM_SOAK_SEED=$(SOAK_SEED) \
	  $(GO) test -count=1 -v -timeout 90m -run TestSoak ./e2e/
	@cat bin/soak-table.txt

## test-short: the quick tests only (-short skips the fault suite and the multi-process runs)
test-short: postgres
	$(GO) test -short -count=1 ./...

## bench: simbench, the worker beside the limits of this machine, in one run (BENCH_ARGS=-quick: under a minute)
bench: postgres build
	./bin/simbench -worker bin/simworker -out bin/bench-table.md $(BENCH_ARGS)

## bench-go: the Go micro-benchmarks: decode+validate and event encoding beside encoding/json,
## deciding batches against PostgreSQL
bench-go: postgres
	$(GO) test -run '^$$' -bench . -benchmem ./...

## fuzz: every fuzz target of the module, FUZZTIME each (default 60s)
fuzz:
	./scripts/fuzz.sh

STATICCHECK_VERSION := v0.8.2

## lint: gofmt, go vet and staticcheck (fetched by go run at a fixed version)
lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) ./...

fmt:
	gofmt -w $$(git ls-files '*.go')

## docs: regenerate docs/configuration.md's tables from the commands' --help (make test fails when they differ)
docs:
	UPDATE_DOCS=1 $(GO) test -count=1 -run TestConfigurationDoc ./cmd/simworker ./cmd/simctl

## validate-docs: AsyncAPI (official parser), docker-compose.yml (Compose schema), deploy/k8s (Kubernetes schemas)
validate-docs:
	./scripts/validate-docs.sh

## postgres: make sure the PostgreSQL server binaries are here (installs them with apt-get as root)
postgres:
	@./scripts/ensure-postgres.sh

## chromium: make sure a Chromium is here for the browser test of the API reference (installs Debian's with apt-get as root)
chromium:
	@./scripts/ensure-chromium.sh

## nats-cli: the nats command line tool, for publishing and watching by hand
nats-cli:
	@command -v nats >/dev/null 2>&1 || [ -x "$$($(GO) env GOPATH)/bin/nats" ] || { \
	  echo "installing the nats CLI $(NATS_CLI_VERSION) (once; about a minute)..."; \
	  $(GO) install github.com/nats-io/natscli/nats@$(NATS_CLI_VERSION) || \
	  echo "warning: could not install the nats CLI; simworker dev still runs"; }

clean:
	@pidfile=.simworker-dev/pg/postmaster.pid; \
	if [ -f $$pidfile ] && kill -0 "$$(head -1 $$pidfile)" 2>/dev/null; then \
	  echo "make clean: simworker dev is running (its PostgreSQL, pid $$(head -1 $$pidfile), lives in .simworker-dev): stop it first (Ctrl-C), then make clean" >&2; \
	  exit 1; \
	fi
	rm -rf bin .simworker-dev
