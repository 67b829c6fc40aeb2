package main

import (
	"context"
	"fmt"
	"os"
	"runtime/debug"
	"strconv"
	"time"

	"go.opentelemetry.io/otel/attribute"

	"github.com/rtstream/rtstream"
	"github.com/rtstream/rtstream/observability"
	"github.com/rtstream/rtstream/record"
)

// tracingShutdown bounds the export of the last spans at shutdown: a trace
// store that does not answer must not hold the process.
const tracingShutdown = 5 * time.Second

// startTracing starts OpenTelemetry's exporter when the OTEL_* variables ask
// for it, and says so once; it flushes last, after everything that makes
// spans has stopped.
func (a *app) startTracing(ctx context.Context) error {
	cfg := a.cfg.Tracing
	if !cfg.Enabled() {
		return nil
	}
	if cfg.InstanceID == "" {
		host, _ := os.Hostname()
		cfg.InstanceID = host + "-" + strconv.Itoa(os.Getpid())
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		cfg.ServiceVersion = bi.Main.Version
	}
	t, err := observability.NewTracing(ctx, cfg)
	if err != nil {
		return fmt.Errorf("tracing: %w", err)
	}
	a.tracing = t
	a.onClose(func() {
		ctx, cancel := context.WithTimeout(context.Background(), tracingShutdown)
		defer cancel()
		if err := t.Shutdown(ctx); err != nil {
			a.log.Warn("tracing: spans not exported at shutdown", "err", err)
		}
	})
	a.log.Info("tracing on: exporting spans over OTLP/HTTP", "service", cfg.ServiceName, "instance", cfg.InstanceID,
		"sampler", cfg.Sampler, "sampler_arg", cfg.SamplerArg)
	return nil
}

// deliveryTrace is the fan-out's hook into tracing: a delivery span for each
// traced, sampled results record that reaches subscribers here. Nil when
// tracing is off, so that the hub skips it.
func (a *app) deliveryTrace() func(record.Trace, string, record.Position, int, int) rtstream.DeliveryTrace {
	t := a.tracing
	if t == nil {
		return nil
	}
	return func(tr record.Trace, streamID string, pos record.Position, results, subscribers int) rtstream.DeliveryTrace {
		d := t.StartDelivery(tr.Parent, tr.State,
			attribute.String("rtstream.stream_id", streamID),
			attribute.Int("messaging.kafka.destination.partition", int(pos.Partition)),
			attribute.Int64("messaging.kafka.message.offset", pos.Offset),
			attribute.Int("rtstream.results", results),
			attribute.Int("rtstream.subscribers", subscribers))
		if d == nil {
			return nil // not a non-nil interface holding a nil pointer
		}
		return d
	}
}
