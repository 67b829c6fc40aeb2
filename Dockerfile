# rtstream server image. Build: docker build -t rtstream .
# (docker compose up builds it too). The binary is static (CGO off).

ARG GO_VERSION=1.26
ARG ALPINE_VERSION=3.22

FROM golang:${GO_VERSION}-alpine AS build
WORKDIR /src
# Modules first, so that a code change does not download them again.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod \
    go mod download
COPY . .
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o /out/rtstream ./cmd/rtstream

# Alpine rather than distroless: its busybox wget gives the health check a way
# to ask GET /readyz (distroless has no shell and no HTTP client, and the
# server has no self-check mode).
FROM alpine:${ALPINE_VERSION}
RUN apk add --no-cache ca-certificates tzdata \
    && addgroup -S -g 10001 rtstream \
    && adduser -S -D -H -u 10001 -G rtstream -s /sbin/nologin rtstream \
    && mkdir -p /app/data \
    && chown rtstream:rtstream /app/data
COPY --from=build /out/rtstream /usr/local/bin/rtstream
WORKDIR /app
USER 10001:10001
ENV HTTP_ADDR=:8080 \
    DATA_DIR=/app/data
EXPOSE 8080
# 200 only when Kafka is reachable and the router and fan-out run.
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD wget -q -O /dev/null http://127.0.0.1:8080/readyz || exit 1
ENTRYPOINT ["/usr/local/bin/rtstream"]
