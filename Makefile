# make demo   runs the example site against a real Centrifugo
# make test   runs the whole suite (installs what it needs first)
# make bench  runs the benchmarks

CENTRIFUGO_VERSION := v6.9.1
CENTRIFUGO_MODULE  := github.com/centrifugal/centrifugo/v6
BIN                := $(CURDIR)/bin
GO                 ?= go

.PHONY: demo test bench check centrifugo npm

## centrifugo: install Centrifugo into bin/ unless the right version is there.
centrifugo:
	@mkdir -p $(BIN)
	@if $(GO) version -m $(BIN)/centrifugo 2>/dev/null | grep -q "mod[[:space:]]*$(CENTRIFUGO_MODULE)[[:space:]]*$(CENTRIFUGO_VERSION)"; then \
		echo "centrifugo $(CENTRIFUGO_VERSION): bin/centrifugo"; \
	else \
		echo "installing centrifugo $(CENTRIFUGO_VERSION) into bin/ (a few minutes, once)"; \
		GOBIN=$(BIN) $(GO) install $(CENTRIFUGO_MODULE)@$(CENTRIFUGO_VERSION); \
	fi

## npm: install the browser client (centrifuge-js) for the example site.
npm:
	@command -v npm >/dev/null 2>&1 || { echo "npm is missing: install Node.js and npm (Debian: apt-get install nodejs npm)"; exit 1; }
	@cd example_app && if [ ! -f node_modules/centrifuge/dist/centrifuge.js ]; then \
		npm ci --no-audit --no-fund --loglevel=error; fi

demo: centrifugo npm
	cd example_app && $(GO) run .

check:
	@unformatted=$$(gofmt -l . ); if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...
	cd example_app && $(GO) vet ./...

test: centrifugo npm check
	$(GO) test -race -count=1 ./...
	cd example_app && $(GO) test -race -count=1 ./...

## bench: the hot paths beside a bare Gin route, with ratios measured in the same run.
bench:
	$(GO) test -run '^$$' -bench . -benchmem -count=5 . | awk -f scripts/bench-ratios.awk
