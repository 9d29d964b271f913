# electrum-hashcash build, test, demo and benchmarks.

GO            ?= go
XCADDY        ?= $(shell $(GO) env GOPATH)/bin/xcaddy
CADDY_VERSION := v2.11.9
CADDY_L4      := github.com/mholt/caddy-l4@v0.1.2
MODULE        := github.com/electrum-hashcash/electrum-hashcash
SOURCES       := $(shell find . -name '*.go' -not -path './bin/*') go.mod go.sum

.PHONY: all test test-arm64 release release-check fuzz e2e demo bench bench-flood bench-flood-firewall bench-paying-flood bench-redis bench-many-networks bench-free-calm vet clean

all: bin/caddy bin/clientproxy

# The module proxy answers 403 for this unpublished module; "|off" turns any
# proxy failure into "not found", so the go command uses the --replace.
XCADDY_GOPROXY := $(shell $(GO) env GOPROXY | tr , '|')|off

# caddy with caddy-l4 and this working tree's hashcash module (see xcaddy.md).
bin/caddy: $(SOURCES)
	$(GO) mod download
	GOPROXY='$(XCADDY_GOPROXY)' $(XCADDY) build $(CADDY_VERSION) --output $@ \
		--with $(CADDY_L4) \
		--with $(MODULE)/caddyhashcash@v0.0.0 \
		--replace $(MODULE)@v0.0.0=$(CURDIR)

bin/clientproxy: $(SOURCES)
	$(GO) build -o $@ ./clientproxy

bin/regtestserver: $(SOURCES)
	$(GO) build -o $@ ./internal/cmd/regtestserver

vet:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); \
		if [ -n "$$unformatted" ]; then echo "gofmt needed: $$unformatted"; exit 1; fi
	$(GO) vet ./...
	$(GO) vet -tags systemtest ./...

# The test command CI runs (.ci/run installs electrum, nftables, qemu-user
# and xcaddy first, runs as root and raises the open-file limit): vet, the
# xcaddy-built binary's check, every test under -race, the system tests
# (build tag systemtest: the real wallet, nftables, thousands of sockets)
# included (fuzz targets run their seed corpora), package stamp's tests for
# arm64 under qemu (test-arm64), then each fuzz target for FUZZTIME. A
# plain `go test ./...` runs everything but the system tests and needs none
# of that.
test: vet bin/caddy bin/clientproxy bin/regtestserver
	.ci/check-caddy-binary bin/caddy bin/clientproxy bin/regtestserver
	CADDY_BIN=$(CURDIR)/bin/caddy CLIENTPROXY_BIN=$(CURDIR)/bin/clientproxy \
		$(GO) test -race -tags systemtest -count=1 -timeout 40m ./...
	$(MAKE) test-arm64
	$(MAKE) release-check
	$(MAKE) fuzz

# Package stamp's tests built for arm64 and run under qemu-aarch64 (Debian's
# qemu-user), so that the ARMv8 SHA2 minting kernel (kernel_arm64.s) is
# checked on every test run; STAMP_WANT_KERNEL makes them fail unless Mint
# used that kernel. The tests read testdata/, so they run in the package.
test-arm64:
	@mkdir -p bin
	GOARCH=arm64 $(GO) test -c -o bin/stamp-arm64.test ./internal/stamp
	cd internal/stamp && STAMP_WANT_KERNEL=sha2 qemu-aarch64 $(CURDIR)/bin/stamp-arm64.test -test.count=1

# clientproxy for the six platforms wallets run on, each an archive named
# with the version (git describe) holding the binary and README.md, and
# SHA256SUMS over the archives, in bin/release/. Each binary picks its
# minting kernel at run time.
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
PLATFORMS := linux/amd64 linux/arm64 darwin/amd64 darwin/arm64 windows/amd64 windows/arm64
release:
	@rm -rf bin/release && mkdir -p bin/release
	@set -e; for p in $(PLATFORMS); do \
		os=$${p%/*} arch=$${p#*/} name=clientproxy-$(VERSION)-$${p%/*}-$${p#*/}; \
		exe=clientproxy; [ $$os = windows ] && exe=clientproxy.exe; \
		mkdir -p bin/release/$$name; \
		CGO_ENABLED=0 GOOS=$$os GOARCH=$$arch $(GO) build -trimpath -ldflags '-s -w' -o bin/release/$$name/$$exe ./clientproxy; \
		cp README.md bin/release/$$name/; \
		if [ $$os = windows ]; then \
			(cd bin/release && python3 -m zipfile -c $$name.zip $$name); \
		else \
			tar -C bin/release -czf bin/release/$$name.tar.gz $$name; \
		fi; \
		echo "built $$name"; \
	done
	cd bin/release && sha256sum *.tar.gz *.zip >SHA256SUMS && cat SHA256SUMS

# The release binaries for this machine and for arm64 Linux (under
# qemu-aarch64) mint and verify a stamp with their own kernel; the archives
# match SHA256SUMS.
release-check: release
	cd bin/release && sha256sum -c SHA256SUMS
	bin/release/clientproxy-$(VERSION)-linux-amd64/clientproxy --self-test --work 2^16
	qemu-aarch64 bin/release/clientproxy-$(VERSION)-linux-arm64/clientproxy --self-test --work 2^16

# Each fuzz target for a fixed time; new failing inputs land in the
# package's testdata/fuzz, to be committed with the fix.
FUZZTIME ?= 30s
FUZZ_TARGETS := ./internal/rpcline:FuzzScanAgreesWithEncodingJSON \
	./internal/rpcline:FuzzStampRoundTrip \
	./internal/verify:FuzzVerifierArbitraryBytes \
	./caddyhashcash:FuzzFramingUnderChunking
fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do \
		echo "fuzz $${t#*:} ($${t%%:*}) for $(FUZZTIME)"; \
		$(GO) test -run '^$$' -fuzz "^$${t#*:}$$" -fuzztime $(FUZZTIME) "$${t%%:*}"; \
	done

e2e: bin/caddy bin/clientproxy
	CADDY_BIN=$(CURDIR)/bin/caddy CLIENTPROXY_BIN=$(CURDIR)/bin/clientproxy \
		$(GO) test -tags systemtest -count=1 -v ./internal/e2e/

demo: bin/caddy bin/clientproxy
	$(GO) run ./internal/cmd/demo -caddy bin/caddy -clientproxy bin/clientproxy

# Benchmarks, about 5 minutes on 2 cores: micro-benchmarks, then loadbench
# (upstream, caddy proxy, caddy hashcash+proxy side by side, caddy as a child
# process built from this tree). The report is also written to bin/loadbench.md.
bench: bin/caddy
	$(GO) test -run '^$$' -bench 'Check' -benchmem ./internal/verify
	$(GO) test -run '^$$' -bench 'MintVerify' -benchtime 400x ./internal/verify
	$(GO) test -run '^$$' -bench . -benchmem -cpu 1,2 ./internal/replay
	$(GO) test -run '^$$' -bench . -benchmem ./internal/rpcline ./internal/stamp ./internal/client
	$(GO) run ./internal/cmd/loadbench -caddy bin/caddy -out bin/loadbench.md

# Honest clients' latency alone and under a flood of 300 flooder connections
# (internal/cmd/loadbench -flood), about 45 seconds; also bin/loadbench-flood.md.
bench-flood: bin/caddy
	$(GO) run ./internal/cmd/loadbench -caddy bin/caddy -flood 300 -out bin/loadbench-flood.md

# The same flood behind the nftables connection rate limit of
# docs/security.md ("Limit new connections per network in the firewall"),
# 2 new connections a second per /24 after a burst of 16: needs root and nft.
bench-flood-firewall: bin/caddy
	$(GO) run ./internal/cmd/loadbench -caddy bin/caddy -flood 300 -flood-conn-rate 2 -out bin/loadbench-flood-firewall.md

# Moving prices: one network floods with valid stamps, re-minting at the price
# each refusal names, while honest clients on other networks are measured
# alone and under it (internal/cmd/loadbench -paying-flood), about a minute;
# also bin/loadbench-paying-flood.md. Fails if an honest request is refused.
# The Redis store against the in-memory one: paths (b), (c) and (r) of
# internal/cmd/loadbench, saturated and paced, with a redis-server it
# starts on a free loopback port (needs redis-server on PATH), about 4
# minutes; also bin/loadbench-redis.md.
bench-redis: bin/caddy
	$(GO) run ./internal/cmd/loadbench -caddy bin/caddy -paths bcr -out bin/loadbench-redis.md

bench-paying-flood: bin/caddy
	$(GO) run ./internal/cmd/loadbench -caddy bin/caddy -paying-flood -out bin/loadbench-paying-flood.md

# Moving prices: 30 networks each send 80% of their budget with valid stamps,
# together 2.4 times what a slow upstream serves (4 workers, 20 ms a request),
# with max_in_flight 40, while honest wallets, each behind its own clientproxy
# on its own network, go on alone, through the flood and after it
# (internal/cmd/loadbench -many-networks), about 2 minutes; also
# bin/loadbench-many-networks.md. Fails if an honest request gets an error.
bench-many-networks: bin/caddy
	$(GO) run ./internal/cmd/loadbench -caddy bin/caddy -many-networks 30 -out bin/loadbench-many-networks.md

# Moving prices, free while calm: the same unstamped workload through caddy's
# proxy alone and through hashcash at price 0 with network_budget set, then
# proxy: saturated, paced, and honest wallets through clientproxy
# (internal/cmd/loadbench -free-calm), about 3 minutes; also
# bin/loadbench-free-calm.md. Fails if a request gets an error or clientproxy
# mints a stamp.
bench-free-calm: bin/caddy
	$(GO) run ./internal/cmd/loadbench -caddy bin/caddy -free-calm -out bin/loadbench-free-calm.md

clean:
	rm -rf bin
