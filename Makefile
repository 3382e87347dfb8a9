# perfagent build, test and demo targets.
GO        ?= go
BIN       := bin
VERSION   := $(shell cat VERSION)
REVISION  := $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
BRANCH    := $(shell git rev-parse --abbrev-ref HEAD 2>/dev/null || echo unknown)
VPKG      := github.com/prometheus/common/version
LDFLAGS   := -X $(VPKG).Version=$(VERSION) -X $(VPKG).Revision=$(REVISION) -X $(VPKG).Branch=$(BRANCH)
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
DEADCODE    := golang.org/x/tools/cmd/deadcode@v0.52.0
ARCHS       ?= amd64 arm64
DIST        ?= dist

.PHONY: all build test test-short lint run demo bench soak accuracy closed-loop dashboards mixin release docker ui-screenshots fuzz faults clean

all: lint test build

build:
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN)/perfagent ./cmd/perfagent
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN)/llmsim ./cmd/llmsim

# The whole suite, with the race detector, then the accuracy and
# closed-loop floors, whose replays are too slow under -race. Tests that
# need Debian's prometheus, promtool or alertmanager skip (saying so) when
# they are not installed; .ci/run installs them. cmd/perfagent alone takes
# about 19 minutes under -race on two cores, hence the longer timeout.
test:
	$(GO) test -race -count=1 -timeout 45m ./...
	$(GO) test -count=1 -timeout 30m -run 'Floor|DirectEvaluation' ./cmd/accuracy/

test-short:
	$(GO) test -short ./...

# deadcode exits 0 whatever it finds, so its output decides. Tests count
# as callers (-test): a function that only tests call is not reported.
lint:
	@fmt=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$fmt" ]; then echo "not gofmt-formatted:"; echo "$$fmt"; exit 1; fi
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...
	@dead=$$($(GO) run $(DEADCODE) -test ./...) || exit 1; \
	  if [ -n "$$dead" ]; then echo "unreachable functions:"; echo "$$dead"; exit 1; fi

run: build
	$(BIN)/perfagent --config.file=examples/perfagent.yml --storage.path=data/

demo: build
	./examples/demo/run.sh $(BIN)

# Benchmarks write a JSON report (bench.json) with each result and its
# ratio to the smallest case of its family, measured in the same run, and
# the README's "Measured" table is written from it. Packages run one at
# a time (-p 1): two packages' benchmarks sharing the machine's cores
# would skew a ratio whose baseline ran before the other package began.
bench:
	$(GO) test -p 1 -run '^$$' -bench . -benchmem -benchtime 5x ./... | tee bench.txt
	$(GO) run ./internal/benchreport < bench.txt > bench.json
	$(GO) run ./internal/benchreport readme bench.json README.md

# A soak: the agent beside SOAK_SERVERS simulated servers for SOAK_CYCLES
# cycles of 15 s (two hours), to see that its memory stays flat.
# soak.txt has a line for every ten minutes; soak.json the figures.
SOAK_SERVERS ?= 1000
SOAK_CYCLES ?= 480
soak:
	PERFAGENT_SOAK=$(SOAK_SERVERS) $(GO) test -run '^$$' -bench BenchmarkFleetSoak -benchtime $(SOAK_CYCLES)x -timeout 0 ./cmd/perfagent | tee soak.txt
	$(GO) run ./internal/benchreport < soak.txt > soak.json

# Replays every simulator scenario through the collector and the built-in
# rules and scores the detections against the scenarios' ground truth.
accuracy:
	$(GO) run ./cmd/accuracy --report accuracy.json

# For each scenario, applies the top recommendation to the simulated server
# and compares the predicted with the measured change.
closed-loop:
	$(GO) run ./cmd/accuracy --closed-loop --report closed-loop.json

# Writes the Grafana dashboards (dashboards/*.json) from their code in
# dashboards/; a test fails when the committed files differ.
dashboards:
	$(GO) test ./dashboards -run '^TestGenerated$$' -count=1 -update

# Renders the monitoring mixin (mixin/mixin.libsonnet) into mixin/out/;
# a test fails when the committed files differ.
mixin: dashboards
	$(GO) test ./mixin -run '^TestRendered$$' -count=1 -update

# Release tarballs for linux/amd64 and linux/arm64 and their checksums in
# dist/ (scripts/release.sh); ARCHS and DIST choose others.
release:
	LDFLAGS='$(LDFLAGS)' ARCHS='$(ARCHS)' DIST='$(DIST)' ./scripts/release.sh

# The container image perfagent:$(VERSION) for this machine's architecture
# (Dockerfile), built with podman, or docker if podman is missing.
IMAGE_ARCH  := $(shell $(GO) env GOARCH)
CONTAINER   ?= $(shell command -v podman || command -v docker)
docker:
	rm -rf .build && mkdir -p .build/linux-$(IMAGE_ARCH) .build/storage
	for cmd in perfagent llmsim; do \
	  CGO_ENABLED=0 GOOS=linux GOARCH=$(IMAGE_ARCH) $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o .build/linux-$(IMAGE_ARCH)/$$cmd ./cmd/$$cmd || exit 1; \
	done
	cp /etc/ssl/certs/ca-certificates.crt .build/ca-certificates.crt
	$(CONTAINER) build --build-arg ARCH=$(IMAGE_ARCH) -t perfagent:$(VERSION) .

# The screenshots of docs/ui.md, taken by the browser test (needs chromium).
ui-screenshots:
	mkdir -p docs/ui
	PERFAGENT_UI_SCREENSHOTS=$(CURDIR)/docs/ui $(GO) test ./cmd/perfagent -run '^TestUIInBrowser$$' -count=1

# Each fuzz target for FUZZTIME (go test runs one target at a time); new
# findings land in the package's testdata/fuzz and fail the run.
FUZZTIME ?= 10m
FUZZ_TARGETS := ./config:FuzzLoad ./rules:FuzzRuleFile ./collector:FuzzProfile ./collector:FuzzExposition \
	./simulator:FuzzParseFleet ./web/api/v1:FuzzRequests ./internal/promapi:FuzzAnswer ./internal/scraper:FuzzAppendPage
fuzz:
	@for t in $(FUZZ_TARGETS); do pkg=$${t%%:*}; name=$${t##*:}; \
	  echo "$$name ($$pkg) for $(FUZZTIME)"; \
	  $(GO) test $$pkg -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) || exit 1; \
	done

# The fault suite: outages of Prometheus, Alertmanager and model servers,
# SIGKILLed rollouts, load and hostile clients, with real components on
# loopback. Each scenario prints one line with its figure (faults.txt);
# docs/reliability.md keeps the table.
faults:
	@rm -f faults.txt
	PERFAGENT_FAULTS=1 PERFAGENT_FAULTS_REPORT=$(CURDIR)/faults.txt \
	  $(GO) test ./cmd/perfagent -run '^TestFault' -count=1 -timeout 30m -v > faults.log 2>&1 || \
	  { grep -E '^(---|===|FAIL|panic)|_test.go:' faults.log | tail -50; exit 1; }
	@cat faults.txt

clean:
	rm -rf $(BIN) dist .build data bench.txt bench.json soak.txt soak.json accuracy.json closed-loop.json faults.txt faults.log
