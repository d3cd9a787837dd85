# make demo   runs the example site, realtime served from its own process (CENTRIFUGO=1: on a real Centrifugo)
# make test   runs the whole suite (installs what it needs first)
# make bench  runs the benchmarks, 8 runs each, and prints median ratios
# make check  gofmt, go vet, staticcheck (with the load tag: no file is !load, so that is every file), and govulncheck when its database is reachable
# make fuzz   runs each fuzz target for FUZZTIME (default 30s)
# make load   the load generator: token routes, publishing paths, end to end, memory, a reconnect storm
# make load-embedded  the embedded server against Centrifugo, paired in one run (about a minute)
# make paths  lists the library's functions and files that one POST auth and one Broadcast run through

CENTRIFUGO_VERSION  := v6.9.1
CENTRIFUGO_MODULE   := github.com/centrifugal/centrifugo/v6
STATICCHECK_VERSION := v0.8.2
GOVULNCHECK_VERSION := v1.9.0
BIN                 := $(CURDIR)/bin
GO                  ?= go
BENCH_COUNT         ?= 8
FUZZTIME            ?= 30s
FUZZ_TARGETS        := FuzzTokenRoutes FuzzProxyRoutes FuzzSessionUser FuzzValidChannel FuzzPattern

.PHONY: demo test bench check centrifugo npm tools fuzz load load-embedded paths

# install MODULE/cmd VERSION NAME: go install into bin/ unless NAME there is that version.
define install
	@mkdir -p $(BIN)
	@if $(GO) version -m $(BIN)/$(3) 2>/dev/null | grep -q "mod[[:space:]]*$(1)[[:space:]]*$(2)"; then :; else \
		echo "installing $(3) $(2) into bin/"; \
		GOBIN=$(BIN) $(GO) install $(4)@$(2); \
	fi
endef

## centrifugo: install Centrifugo into bin/ unless the right version is there (a few minutes, once).
centrifugo:
	$(call install,$(CENTRIFUGO_MODULE),$(CENTRIFUGO_VERSION),centrifugo,$(CENTRIFUGO_MODULE))

## tools: staticcheck and govulncheck into bin/.
tools:
	$(call install,honnef.co/go/tools,$(STATICCHECK_VERSION),staticcheck,honnef.co/go/tools/cmd/staticcheck)
	$(call install,golang.org/x/vuln,$(GOVULNCHECK_VERSION),govulncheck,golang.org/x/vuln/cmd/govulncheck)

## npm: install the browser client (centrifuge-js) for the example site.
npm:
	@command -v npm >/dev/null 2>&1 || { echo "npm is missing: install Node.js and npm (Debian: apt-get install nodejs npm)"; exit 1; }
	@cd example_app && if [ ! -f node_modules/centrifuge/dist/centrifuge.js ]; then \
		npm ci --no-audit --no-fund --loglevel=error; fi

## demo: the demo site, its realtime served from its own process (the embedded server): nothing
## else to build. `make demo CENTRIFUGO=1` runs it against a real Centrifugo instead (installed
## into bin/ first). The binary is built into bin/ and exec'd, so that Ctrl-C reaches the demo
## itself, which stops everything and exits 0 (`go run` would exit 1: make's "Error 1").
demo: npm $(if $(CENTRIFUGO),centrifugo)
	@echo "building the demo (first time: about a minute)..."
	@cd example_app && $(GO) build -o $(BIN)/instant-demo .
	@cd example_app && exec $(BIN)/instant-demo $(if $(CENTRIFUGO),-server centrifugo)

check: tools
	@unformatted=$$(gofmt -l . ); if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet -tags load ./...
	cd example_app && $(GO) vet ./...
	cd embedded && $(GO) vet -tags load ./...
	$(BIN)/staticcheck -tags load ./...
	cd example_app && $(BIN)/staticcheck ./...
	cd embedded && $(BIN)/staticcheck -tags load ./...
	@$(GO) build -o $(BIN)/reachable ./scripts/reachable
	@if $(BIN)/reachable https://vuln.go.dev/index/db.json; then \
		$(BIN)/govulncheck ./... && (cd example_app && $(BIN)/govulncheck ./...) && (cd embedded && $(BIN)/govulncheck ./...); \
	else echo "govulncheck: vuln.go.dev is not reachable from here; skipped"; fi

## test: the three modules' suites at once, their live tests in parallel (-parallel):
## they mostly wait on the servers they start (Centrifugo, Chromium, PostgreSQL, Redis).
## The library's is the long pole (about 65s under -race here beside the others); the
## other two print their output after it. -vet=off: check has run all of go vet. Ctrl-C
## (or a TERM) stops all three, with the servers they started.
TEST_FLAGS := -race -vet=off -count=1 -timeout 5m
test: centrifugo npm check
	@mkdir -p $(BIN)
	@trap 'trap - INT TERM; kill -TERM 0' INT TERM; \
	rm -f $(BIN)/example_app.test.rc $(BIN)/embedded.test.rc; \
	for m in example_app embedded; do \
		(cd $$m && $(GO) test $(TEST_FLAGS) -parallel 6 ./... >$(BIN)/$$m.test.out 2>&1; echo $$? >$(BIN)/$$m.test.rc) & \
	done; \
	echo "$(GO) test $(TEST_FLAGS) -parallel 12 ./...  (and example_app's and embedded's at the same time)"; \
	$(GO) test $(TEST_FLAGS) -parallel 12 ./...; lib=$$?; wait; \
	for m in example_app embedded; do \
		echo "cd $$m && $(GO) test $(TEST_FLAGS) -parallel 6 ./..."; cat $(BIN)/$$m.test.out; \
	done; \
	[ $$lib -eq 0 ] && [ "$$(cat $(BIN)/example_app.test.rc 2>/dev/null)" = 0 ] && [ "$$(cat $(BIN)/embedded.test.rc 2>/dev/null)" = 0 ]

## bench: the hot paths beside a bare Gin route, medians of BENCH_COUNT runs and their ratios,
## written into BENCHMARKS.md too. Each run measures every bare route right before its plugin
## twin (go test -count would run all of one before all of the other, so drift on a shared
## machine would read as overhead).
bench: centrifugo
	@mkdir -p bin
	$(GO) test -c -o bin/bench.test .
	for k in $$(seq $(BENCH_COUNT)); do bin/bench.test -test.run '^$$' -test.bench . -test.benchmem || exit 1; done | $(GO) run ./scripts/benchratio | tee bin/bench.txt
	@sed -n '/^benchmark /,$$p' bin/bench.txt | sed 's/^/    /' | $(GO) run ./scripts/mdsection bench BENCHMARKS.md

## load: the load generator (load_test.go, build tag load) against real servers on loopback,
## LOAD_SECONDS per route phase (default 30), then the reconnect storm (1,000 pages of client.js
## under Node; about two minutes); its report goes into BENCHMARKS.md. LOAD_ONLY=storm runs the
## storm alone and rewrites its section only.
load: centrifugo npm
	@mkdir -p bin
	@rm -f bin/load.md bin/storm.md
	CI=true LOAD_OUT=$(CURDIR)/bin/load.md LOAD_STORM_OUT=$(CURDIR)/bin/storm.md $(GO) test -tags load -count=1 -run '^TestLoad$$' -timeout 15m -v . | grep -v '^=== RUN\|^--- PASS'
	@if [ -s bin/load.md ]; then $(GO) run ./scripts/mdsection load BENCHMARKS.md < bin/load.md; fi
	@if [ -s bin/storm.md ]; then $(GO) run ./scripts/mdsection storm BENCHMARKS.md < bin/storm.md; fi

## load-embedded: issue 21's measures (embedded/load_test.go, build tag load): the embedded
## server against Centrifugo on the same work, alternating in one run: publish→receive, server
## CPU per event, fan-out, memory per idle connection, Broadcast in a handler, a deploy under
## LOAD_PAGES pages (1,000). Its report goes into BENCHMARKS.md's "embedded" section.
load-embedded: centrifugo
	@mkdir -p bin
	@rm -f bin/load-embedded.md
	cd embedded && CI=true LOAD_OUT=$(CURDIR)/bin/load-embedded.md $(GO) test -tags load -count=1 -run '^TestLoadEmbeddedVsCentrifugo$$' -timeout 10m -v . | grep -v '^=== RUN\|^--- PASS'
	@if [ -s bin/load-embedded.md ]; then $(GO) run ./scripts/mdsection embedded BENCHMARKS.md < bin/load-embedded.md; fi

## fuzz: each fuzz target in turn, FUZZTIME each; new failing inputs land in testdata/fuzz/.
fuzz:
	@for t in $(FUZZ_TARGETS); do \
		echo "== $$t ($(FUZZTIME))"; \
		$(GO) test -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME) . || exit 1; \
	done

## paths: the functions and files of ours that one POST auth for a logged-in user and one
## Broadcast run through, counted by coverage (scripts/paths says how).
paths:
	@$(GO) build -cover -covermode=atomic -coverpkg=github.com/gin-instant/instant/... -o $(BIN)/paths ./scripts/paths
	@GOCOVERDIR=$$(mktemp -d) $(BIN)/paths
