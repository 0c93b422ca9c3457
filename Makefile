# Developer and CI entry points. The sandbox targets and "test" run
# scripts/asterisk-sandbox.sh, which needs root (chroot and mount).

GO ?= go
SANDBOX := scripts/asterisk-sandbox.sh

.PHONY: sandbox-build sandbox-start sandbox-stop sandbox-status test test-unit

## sandbox-build: build the cached Debian sid chroot with Asterisk 22 once
sandbox-build:
	$(SANDBOX) build

## sandbox-start: start Asterisk on 127.0.0.1 (AMI 5038, ARI 8088)
sandbox-start:
	$(SANDBOX) start

## sandbox-stop: stop Asterisk and unmount the chroot's /proc
sandbox-stop:
	$(SANDBOX) stop

## sandbox-status: show whether Asterisk runs (exit status 3 when stopped)
sandbox-status:
	$(SANDBOX) status

## test: vet and run every test against a freshly started sandbox; the
## real-Asterisk tests fail instead of skipping (AGENTD_REQUIRE_ASTERISK=1).
## A second phase then runs the tests that restart Asterisk or close its AMI
## or HTTP server (TestDisruptive*, AGENTD_TEST_DISRUPTIVE=1) one package at
## a time, because they break tests running beside them; it runs also when
## the first phase failed. The sandbox is stopped afterwards, also when a
## step fails, and the exit status is the first failure's.
test:
	@status=0; \
	$(SANDBOX) start || status=$$?; \
	if [ $$status -eq 0 ]; then \
		eval "$$($(SANDBOX) env)"; \
		export AGENTD_REQUIRE_ASTERISK=1; \
		$(GO) vet ./... || status=$$?; \
		if [ $$status -eq 0 ]; then \
			$(GO) test -race -count=1 ./... || status=$$?; \
			AGENTD_TEST_DISRUPTIVE=1 $(GO) test -race -count=1 -p 1 -run 'Disruptive' ./daemon/... || \
				{ phase2=$$?; [ $$status -ne 0 ] || status=$$phase2; }; \
		fi; \
	fi; \
	$(SANDBOX) stop || true; \
	exit $$status

## test-unit: run the tests without Asterisk; the real-Asterisk tests skip
test-unit:
	$(GO) test -race ./...

## build: build bin/agentd with version information
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT  ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
LDFLAGS := -s -w -X github.com/contactcenter/agentd/daemon.version=$(VERSION) -X github.com/contactcenter/agentd/daemon.commit=$(COMMIT)

.PHONY: build demo demo-stop lint fuzz bench

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/agentd ./cmd/agentd

## demo: start the sandbox Asterisk and agentd with the example configuration
## and the embedded NATS server, then print curl commands to try
demo: build
	scripts/demo.sh start

## demo-stop: stop the demo agentd and the sandbox Asterisk
demo-stop:
	scripts/demo.sh stop

## lint: golangci-lint with .golangci.yml (installed into bin/ on first use)
GOLANGCI_LINT_VERSION := v2.15.0
lint:
	@test -x bin/golangci-lint || GOBIN=$(CURDIR)/bin $(GO) install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION)
	bin/golangci-lint run ./...

## fuzz: run each fuzz target for FUZZTIME (default 30s)
FUZZTIME ?= 30s
fuzz:
	@for pkg in ./ami ./agi; do \
		for target in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
			echo "== $$pkg $$target"; \
			$(GO) test -run '^$$' -fuzz "^$$target$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
		done; \
	done

## bench: build agentd and cmd/agentd-bench and run every scenario against
## the sandbox Asterisk (docs/benchmarks.md). A sandbox that is not running
## is started and stopped afterwards; one already running is left running.
## BENCHFLAGS passes flags, e.g. BENCHFLAGS='-scenarios login,agi'.
bench: build
	@status=0; started=0; \
	if ! $(SANDBOX) status >/dev/null 2>&1; then \
		started=1; \
		$(SANDBOX) start || status=$$?; \
	fi; \
	if [ $$status -eq 0 ]; then \
		eval "$$($(SANDBOX) env)"; \
		$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/agentd-bench ./cmd/agentd-bench && \
			bin/agentd-bench $(BENCHFLAGS) || status=$$?; \
	fi; \
	if [ $$started -eq 1 ]; then $(SANDBOX) stop || true; fi; \
	exit $$status

## dist: static Linux amd64 release tarball and .deb package in dist/
NFPM_VERSION := v2.48.0
.PHONY: dist
dist:
	@test -x bin/nfpm || GOBIN=$(CURDIR)/bin $(GO) install github.com/goreleaser/nfpm/v2/cmd/nfpm@$(NFPM_VERSION)
	scripts/dist.sh $(VERSION) $(COMMIT)
