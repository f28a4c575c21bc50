# The two commands for a fresh machine:
#   make run    install and start the local stack, apply the topology, start the binaries
#   make test   install and start the local stack, then vet, format-check and run every test
.PHONY: run test build generate stack-up stack-down stack-status stack-reset stop fuzz

GO ?= go

run:
	scripts/run

test:
	scripts/test

build:
	$(GO) build -o bin/ ./cmd/...

generate:
	$(GO) generate ./...

fuzz:
	$(GO) test -run '^$$' -fuzz FuzzDecode -fuzztime 60s ./internal/codec
	$(GO) test -run '^$$' -fuzz FuzzDecide -fuzztime 60s ./internal/domain

stack-up:
	scripts/stack up

stack-down: stop
	scripts/stack down

stack-status:
	scripts/stack status

stack-reset: stop
	scripts/stack reset

stop:
	scripts/run stop
