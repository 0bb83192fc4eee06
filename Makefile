# Jifu Open Platform. Two commands on a fresh machine:
#   make run    build everything, start the private database, migrate, seed, serve on :8080
#   make test   build everything and run every test against a private test cluster

GO        ?= go
BIN       := bin/jifu
APPS_DIR  := build/apps
PLUGINS   := $(patsubst plugins/%/,%,$(wildcard plugins/*/))
ADDR      ?= :8080
# -race doubles the run time on 2 cores; CI keeps it on for the packages that
# hold concurrency (the host, stores, web) and the rest run without it.
RACE_PKGS := ./host/... ./web/...
TEST_FLAGS ?= -count=1

.PHONY: all build plugins run test test-go templ templ-check tools fixtures bench bench-load fmt vet clean

all: build

## tools: install the system packages the build and tests need (Debian).
tools:
	@command -v wat2wasm >/dev/null 2>&1 || { echo "installing wabt (wat2wasm)"; \
	  if [ "$$(id -u)" = 0 ]; then DEBIAN_FRONTEND=noninteractive apt-get install -y wabt >/dev/null || \
	    { apt-get update >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y wabt >/dev/null; }; \
	  else sudo apt-get install -y wabt; fi; }
	@{ command -v curl && command -v openssl; } >/dev/null 2>&1 || { echo "installing curl and openssl (the docs' signature scripts are tested)"; \
	  if [ "$$(id -u)" = 0 ]; then DEBIAN_FRONTEND=noninteractive apt-get install -y curl openssl >/dev/null || \
	    { apt-get update >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y curl openssl >/dev/null; }; \
	  else sudo apt-get install -y curl openssl; fi; }
	@{ command -v chromium || command -v chromium-browser; } >/dev/null 2>&1 || { echo "installing chromium (browser tests: QR login)"; \
	  if [ "$$(id -u)" = 0 ]; then DEBIAN_FRONTEND=noninteractive apt-get install -y chromium >/dev/null || \
	    { apt-get update >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium >/dev/null; }; \
	  else sudo apt-get install -y chromium; fi; }

$(BIN): FORCE
	$(GO) build -o $(BIN) ./cmd/jifu

FORCE:

build: $(BIN) plugins

## plugins: compile every first-party app in plugins/ to build/apps/<slug>/app.wasm
plugins: $(BIN)
	@for p in $(PLUGINS); do \
	  $(BIN) --log-level=warn app build plugins/$$p -o $(APPS_DIR)/$$p/app.wasm >/dev/null || exit 1; \
	  echo "built plugin $$p"; \
	done

run: build
	$(BIN) serve --plugins $(APPS_DIR) --addr $(ADDR)

test: tools build templ-check
	$(BIN) dev test -- $(MAKE) --no-print-directory test-go

## templ: regenerate the web's *_templ.go from the .templ views (committed)
templ:
	$(GO) tool templ generate

## templ-check: fail when regenerating the views changes the committed *_templ.go
templ-check:
	@$(GO) tool templ generate >/dev/null 2>&1 || $(GO) tool templ generate
	@git diff --exit-code --stat -- '*_templ.go' && test -z "$$(git ls-files --others --exclude-standard -- '*_templ.go')" || \
	  { echo "templ generate changed the committed *_templ.go: run make templ and commit"; exit 1; }

# test-go runs inside `jifu dev test`, which provides the test cluster.
test-go:
	$(GO) vet ./...
	$(GO) test -race $(TEST_FLAGS) $(RACE_PKGS)
	$(GO) test $(TEST_FLAGS) $$($(GO) list ./... | grep -v -e '/host' -e '/web')
	$(GO) test $(TEST_FLAGS) -run '^TestFlow' ./web/
	$(GO) test -run '^$$' -bench . -benchtime 1x ./...
	cd bench && $(GO) vet ./... && $(GO) test -count=1 -bench . -benchtime 1x ./...

## fixtures: recompile the WAT test fixtures (their .wasm is committed)
fixtures: tools
	@for f in host/testdata/wat/*.wat; do wat2wasm --enable-all $$f -o $${f%.wat}.wasm; done

## bench: the benchmarks recorded in docs/BENCHMARKS.md (bench-load for the HTTP figure)
bench: build
	$(BIN) dev test -- $(GO) test -run '^$$' -bench . -benchmem -count 3 ./host/...
	cd bench && $(GO) test -run '^$$' -bench . -benchmem -count 3

## bench-load: the HTTP figures on the hello plugin through `jifu serve`: hey -c 64 for 20 s
## (closed loop) and vegeta at 5,000 req/s for 20 s (open loop); see bench/load.sh
LOAD_ADDR ?= 127.0.0.1:18089
bench-load: build
	bench/load.sh $(BIN) $(APPS_DIR) $(LOAD_ADDR)

fmt:
	gofmt -w $$(git ls-files '*.go')

vet:
	$(GO) vet ./...

clean:
	rm -rf bin build
