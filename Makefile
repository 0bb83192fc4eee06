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
	@command -v chromium >/dev/null 2>&1 || { echo "installing chromium (browser tests)"; \
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

## bench-load: hey at concurrency 64 for 20 s against `jifu serve` on the hello plugin
LOAD_ADDR ?= 127.0.0.1:18089
bench-load: build
	@command -v hey >/dev/null 2>&1 || DEBIAN_FRONTEND=noninteractive apt-get install -y hey >/dev/null
	@$(BIN) --log-level=warn serve --dev-apps $(APPS_DIR) --addr $(LOAD_ADDR) >/dev/null & pid=$$!; \
	  for i in $$(seq 100); do curl -sf http://$(LOAD_ADDR)/readyz >/dev/null && break; sleep 0.2; done; \
	  hey -z 20s -c 64 http://$(LOAD_ADDR)/apps/hello/; status=$$?; kill -INT $$pid; wait $$pid; exit $$status

fmt:
	gofmt -w $$(git ls-files '*.go')

vet:
	$(GO) vet ./...

clean:
	rm -rf bin build
