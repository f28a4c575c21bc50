# The two commands for a fresh machine:
#   make run    install and start the local stack, apply the topology, start the binaries
#   make test   install and start the local stack, then vet, format-check and run every test
.PHONY: run test test-cluster test-unit build generate stack-up stack-down stack-status stack-reset stop fuzz

GO ?= go

run:
	scripts/run

test:
	scripts/test

# The cluster suite alone (make test runs it too): three brokers, Redis
# Cluster, ClickHouse 2 shards x 2 replicas; failover under load.
test-cluster:
	scripts/test-cluster

# Every test that needs no service (no Kafka, Redis, ClickHouse, registry or
# client toolchain): kfake, the domain, the codec, the handlers. Tests that
# need a service are skipped; make test runs them all.
test-unit:
	LEDGER_UNIT_ONLY=1 CI= $(GO) test -count=1 ./...

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
