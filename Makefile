# TrialHub: `make run` starts the platform, `make test` runs every check and test.
# `make help` lists the targets.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

BUF      := node_modules/.bin/buf

# Every Go module of the workspace, in go.work order.
MODULES  := $(shell sed -n 's/^[[:space:]]*\.\/\([^[:space:]]*\)$$/\1/p' go.work)
DEPS_DIR := .buf-deps/protovalidate
DATA     ?= data
ADDR     ?= 127.0.0.1:8080

.PHONY: help
help: ## Show this help
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

node_modules/.installed: package.json package-lock.json gen/ts/package.json web-client/package.json
	npm ci --no-audit --no-fund
	@touch $@

.PHONY: tools
tools: node_modules/.installed ## Install the pinned toolchain (npm packages, Go tools)
	cd tools && go mod download

.PHONY: proto-deps
proto-deps: tools ## Fetch protovalidate's proto source (pinned in tools/go.mod) into .buf-deps/
	@dir=$$(cd tools && go mod download -json github.com/bufbuild/protovalidate | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$$/\1/p'); \
	test -n "$$dir" || { echo "protovalidate source not found in the module cache" >&2; exit 1; }; \
	rm -rf $(DEPS_DIR) && mkdir -p $(DEPS_DIR)/buf/validate; \
	cp "$$dir/proto/protovalidate/buf/validate/validate.proto" $(DEPS_DIR)/buf/validate/; \
	chmod -R u+w $(DEPS_DIR)

.PHONY: generate
generate: proto-deps ## Regenerate gen/go, gen/ts and ent code from their sources
	rm -rf gen/go/trialhub gen/ts/src/trialhub
	$(BUF) generate
	cd gen/ts && node ../../tools/gen-ts-index.mjs
	@for m in $(MODULES); do \
	  if [ -f $$m/ent/generate.go ]; then (cd $$m && go generate ./ent); fi; \
	done
	gofmt -w gen/go

.PHONY: lint
lint: proto-deps ## buf lint + format, gofmt, go vet on every module, tsc
	$(BUF) lint
	$(BUF) format --diff --exit-code proto
	@out=$$(gofmt -l $(MODULES)); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	@for m in $(MODULES); do \
	  if [ -n "$$(cd $$m && go list ./... 2>/dev/null)" ]; then echo "go vet ./$$m/..."; (cd $$m && go vet ./...); fi; \
	done
	cd gen/ts && npx tsc -p tsconfig.json --noEmit
	npm run build --workspace @trialhub/api >/dev/null
	npm run typecheck --workspace @trialhub/web-client

.PHONY: breaking
breaking: proto-deps ## buf breaking (FILE rules) on every commit that touched the contract
	bash tools/breaking.sh

.PHONY: check-generated
check-generated: generate ## Fail when generated code differs from what is committed
	@status=$$(git status --porcelain -- gen services/*/ent); \
	if [ -n "$$status" ]; then echo "generated code is stale; run make generate and commit:"; echo "$$status"; git diff --stat -- gen services; exit 1; fi

.PHONY: deps
deps: ## Install missing Debian packages the tests need (PostgreSQL server, Chromium)
	bash tools/debian-deps.sh

.PHONY: test
test: deps tools lint breaking check-generated ## Every check and test: lint, breaking, generated code, Go tests on PostgreSQL, TS, browser
	go run ./services/platform/cmd/pgtest -- $(MAKE) --no-print-directory test-go
	$(MAKE) --no-print-directory test-ts
	$(MAKE) --no-print-directory test-web

.PHONY: test-go
# The fault proofs (services/stack/proof) compare latencies measured in one run, so
# they run last and alone: beside another package's tests on two cores the ratios
# measure the neighbour, not the platform.
PROOFS   := services/stack/proof
test-go: ## Go tests of every module (expects TRIALHUB_TEST_POSTGRES_URL, or starts PostgreSQL per package)
	@failed=; for m in $(MODULES); do echo "go test ./$$m/..."; \
	  (cd $$m && go test -race -count=1 $$(go list ./... | grep -v '/$(PROOFS)$$')) || failed="$$failed $$m"; done; \
	echo "go test ./$(PROOFS) (alone)"; (cd $(PROOFS) && go test -race -count=1 .) || failed="$$failed $(PROOFS)"; \
	if [ -n "$$failed" ]; then echo "go test failed in:$$failed"; exit 1; fi

.PHONY: test-ts
test-ts: tools ## TypeScript SDK: build and its tests (node --test)
	npm test --workspace @trialhub/api

.PHONY: test-web
test-web: web ## Browser tests: the app in headless Chromium against the dev stack
	npm test --workspace @trialhub/web-client

.PHONY: web
web: tools ## Build the browser app into web-client/dist
	npm run build --workspace @trialhub/api
	npm run build --workspace @trialhub/web-client

.PHONY: bench
bench: tools ## Go benchmarks of every module
	go run ./services/platform/cmd/pgtest -- bash -c 'for m in $(MODULES); do (cd $$m && go test -run=^$$ -bench=. -benchmem ./...); done'

.PHONY: chaos
chaos: ## Long fault proofs (TRIALHUB_CHAOS=1) of the notification service and the stack, printing their figures
	go run ./services/platform/cmd/pgtest -- bash -c 'failed=; for d in services/notification services/stack/proof; do (cd $$d && TRIALHUB_CHAOS=1 go test -run "Proof" -v -count=1 -timeout 30m .) || failed="$$failed $$d"; done; if [ -n "$$failed" ]; then echo "chaos failed in:$$failed"; exit 1; fi'

.PHONY: build
build: tools ## Build the trialhub command into bin/
	go build -o bin/trialhub ./services/stack/cmd/trialhub

.PHONY: run
run: build web ## Start the whole platform and the web app on embedded SQLite (ADDR=:8080 DATA=data)
	./bin/trialhub dev --addr $(ADDR) --data $(DATA)

.PHONY: ci
ci: ## What CI runs: bash .ci/run
	bash .ci/run
