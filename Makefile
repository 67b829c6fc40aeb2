# Developer entry points. Tests need a Kafka broker; `make test` starts a local
# single-node one (scripts/kafka.sh) and leaves it running for the next run.
GO ?= go

.PHONY: test tools fuzz prometheus-check up down kafka-start kafka-stop kafka-status redis-start redis-stop run bench fmt vet

test: tools kafka-start redis-start vet
	RTSTREAM_TEST_KAFKA_BROKERS=127.0.0.1:$${KAFKA_PORT:-9092} \
	RTSTREAM_TEST_REDIS_URL=redis://127.0.0.1:$${REDIS_PORT:-6379}/0 \
	$(GO) test -race -count=1 -timeout 30m $(GOTESTFLAGS) ./...

# Bounded fuzzing of every decoder and parser facing input (CI runs it).
# Budgets are counts, not durations: with a duration, Go 1.26's fuzz
# coordinator can report its own deadline as a failure ("context deadline
# exceeded", no failing input; go.dev/issue/75804, fixed in Go 1.27), which
# failed a CI run here. 20,000 executions take 2-15 s per target on 2 cores.
FUZZTIME ?= 20000x
FUZZMINIMIZE ?= 1000x
FUZZ_TARGETS = ./record:FuzzAppendResult ./record:FuzzDecodeEventBatch ./record:FuzzDecodeResultBatch ./jsonscan:FuzzValid .:FuzzParseCursor ./handlers:FuzzDecodeEvents ./handlers:FuzzDecodeEventsMatchesEncodingJSON ./handlers:FuzzDecodeFrame \
	./handlers:FuzzDecodeStream ./handlers:FuzzResultFrames ./processor:FuzzCompile ./middleware:FuzzAuthenticate \
	./middleware:FuzzJWTVerify ./middleware:FuzzSubscribeTokenParse ./ratelimit:FuzzResolveClientIP ./processor:FuzzDecodeDataMatchesEncodingJSON \
	./processor:FuzzMarshalMatchesEncodingJSON ./handlers:FuzzAcceptedLeavesAsUTF8

# FuzzEvalBudget runs expressions over 1 MB events, about 100 times slower
# per execution than the others: it gets its own, smaller count.
FUZZTIME_BUDGET ?= 2000x

fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; name=$${t##*:}; \
		echo "fuzz $$name ($$pkg, $(FUZZTIME))"; \
		$(GO) test -run '^$$' -fuzz "^$$name$$" -fuzztime $(FUZZTIME) -fuzzminimizetime $(FUZZMINIMIZE) -timeout 5m $$pkg; \
	done
	@echo "fuzz FuzzEvalBudget (./processor, $(FUZZTIME_BUDGET))"
	$(GO) test -run '^$$' -fuzz '^FuzzEvalBudget$$' -fuzztime $(FUZZTIME_BUDGET) -fuzzminimizetime $(FUZZMINIMIZE) -timeout 10m ./processor

prometheus-check:
	scripts/prometheus.sh check

# The docker-compose stack, for machines with Docker.
up:
	docker compose up -d --build --wait

down:
	docker compose down

redis-start:
	scripts/redis.sh start

# What the tests beyond Go need, installed when missing (quick when present):
# Debian's prometheus (promtool), chromium + playwright-core, schemathesis,
# the Redocly CLI.
tools:
	scripts/prometheus.sh install </dev/null
	scripts/browser.sh install </dev/null
	scripts/schemathesis.sh install </dev/null
	scripts/redocly.sh install </dev/null
	scripts/k8s.sh install </dev/null
	scripts/haproxy.sh install </dev/null
	scripts/kcat.sh install </dev/null

redis-stop:
	scripts/redis.sh stop

kafka-start:
	scripts/kafka.sh start

kafka-stop:
	scripts/kafka.sh stop

kafka-status:
	scripts/kafka.sh status

run:
	$(GO) run ./cmd/rtstream

bench: kafka-start
	RTSTREAM_TEST_KAFKA_BROKERS=127.0.0.1:$${KAFKA_PORT:-9092} $(GO) run ./benchmarks/cmd/rtbench

fmt:
	$(GO) fmt ./...

vet:
	$(GO) vet ./...
