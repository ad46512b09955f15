# semrpc — every target works on a fresh machine that has only Go.
GO        ?= go
STATICCHECK_VERSION ?= v0.8.2
FUZZTIME  ?= 30s

.PHONY: demo test deps bench fuzz lint soak hostile

# The first build compiles every dependency (one to one and a half minutes
# on a loaded 2-core machine, README "Quick start"); say so before the silence.
demo:
	@echo "make demo: compiling ./examples/crawl (the first build takes a minute or two; later ones a few seconds), then running it"
	$(GO) run ./examples/crawl

test: deps
	$(GO) vet ./...
	$(GO) test -race -count=1 ./...

# PostgreSQL and Chromium, which some tests start for real: installed from
# Debian's packages when missing (as root or through sudo), else nothing.
deps:
	@.ci/deps

soak:
	SEMRPC_SOAK=10 $(GO) test -race -count=1 -timeout 60m ./tests/...

bench:
	$(GO) run ./tests/benchreport

# The hostile-input table of doc/security.md, at the issue's sizes (a few
# minutes, several GiB); `go test ./tests/hostile/` runs the same attacks
# smaller and holds the server to their goals.
hostile:
	$(GO) run ./tests/hostilereport -full

# Each fuzz target runs for $(FUZZTIME); seeds live in each package's testdata/fuzz.
FUZZ_TARGETS = \
	./rpc:FuzzServeConn ./rpc:FuzzServeJSON ./rpc:FuzzMsgReader ./rpc:FuzzTableHeaders \
	./crawler:FuzzNormalize ./crawler:FuzzExtractLinks ./labrpc/labgob:FuzzDecode \
	./internal/gobcheck:FuzzCheck

fuzz:
	@set -e; for target in $(FUZZ_TARGETS); do \
		pkg=$${target%%:*}; name=$${target##*:}; \
		echo "== $$pkg $$name"; \
		$(GO) test -run '^$$' -fuzz "^$$name$$" -fuzztime $(FUZZTIME) $$pkg; \
	done

lint:
	$(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) ./...
