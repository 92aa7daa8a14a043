# Pier. The two commands a newcomer needs:
#   make dev    run the whole platform in one process (pier dev)
#   make test   install what the tests need, then run them all
GO      ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)

.PHONY: dev test build vet fmt bench clean

dev:
	$(GO) run -ldflags "$(LDFLAGS)" ./control/cmd/pier dev $(ARGS)

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/pier ./control/cmd/pier

# -count=1: the e2e tests build and run the pier binary, whose sources the
# test cache does not track, so a cached pass could hide a change.
test:
	bash tests/setup.sh
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) vet ./...
	PIER_REQUIRE_SERVERS=1 $(GO) test -count=1 -timeout 30m ./...

bench:
	$(GO) test -run '^$$' -bench . -benchtime 1x ./...

fmt:
	gofmt -w $$(git ls-files '*.go')

clean:
	rm -rf bin
