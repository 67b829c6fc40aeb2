package observability

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"
)

// Defaults of TracingConfig.
const (
	DefaultServiceName = "rtstream"
	// DefaultSampler follows the caller's decision, and samples every
	// trace rtstream starts itself.
	DefaultSampler  = "parentbased_always_on"
	DefaultProtocol = "http/protobuf"
	// DefaultTracedWrites bounds the write spans one results record makes
	// on one instance: a stream with 10,000 subscribers must not make
	// 10,000 spans per result.
	DefaultTracedWrites = 8
)

// TracingConfig is the OpenTelemetry configuration, read from the standard
// OTEL_* variables only. Tracing is off unless an OTLP endpoint is set (or
// OTEL_TRACES_EXPORTER=otlp asks for the default one), and off costs nothing
// but a nil check on each path.
type TracingConfig struct {
	SDKDisabled    bool   // OTEL_SDK_DISABLED
	Exporter       string // OTEL_TRACES_EXPORTER: otlp or none
	Endpoint       string // OTEL_EXPORTER_OTLP_ENDPOINT: base URL, /v1/traces is added
	TracesEndpoint string // OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: the full URL
	Protocol       string // OTEL_EXPORTER_OTLP_[TRACES_]PROTOCOL: http/protobuf only
	ServiceName    string // OTEL_SERVICE_NAME; default DefaultServiceName
	Sampler        string // OTEL_TRACES_SAMPLER; default parentbased_always_on
	SamplerArg     string // OTEL_TRACES_SAMPLER_ARG
	// ServiceVersion and InstanceID label the resource (not from the
	// environment: the binary and the process know them).
	ServiceVersion, InstanceID string
	// TracedWrites per results record and instance; default DefaultTracedWrites.
	TracedWrites int
}

// Enabled reports whether the configuration asks for traces.
func (c TracingConfig) Enabled() bool {
	if c.SDKDisabled || strings.EqualFold(c.Exporter, "none") {
		return false
	}
	// Any other exporter named asks for traces too (and fails Validate).
	return c.Endpoint != "" || c.TracesEndpoint != "" || c.Exporter != ""
}

// Validate reports a setting that cannot work, before anything starts.
func (c TracingConfig) Validate() error {
	var errs []error
	switch strings.ToLower(c.Exporter) {
	case "", "otlp", "none":
	default:
		errs = append(errs, fmt.Errorf("OTEL_TRACES_EXPORTER=%q: want otlp or none", c.Exporter))
	}
	switch c.Protocol {
	case "", "http/protobuf":
	default:
		errs = append(errs, fmt.Errorf("OTEL_EXPORTER_OTLP_PROTOCOL=%q: rtstream exports OTLP over HTTP only; use http/protobuf (port 4318)", c.Protocol))
	}
	if _, err := c.sampler(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// endpointURL is where spans go: the traces endpoint as given, or the
// base endpoint with the signal's path, as the OTLP specification says.
func (c TracingConfig) endpointURL() string {
	switch {
	case c.TracesEndpoint != "":
		return c.TracesEndpoint
	case c.Endpoint != "":
		return strings.TrimSuffix(c.Endpoint, "/") + "/v1/traces"
	}
	return "http://localhost:4318/v1/traces"
}

// sampler reads OTEL_TRACES_SAMPLER as the specification defines it. The
// SDK reads the process environment only; rtstream's .env must work too, and a
// wrong value must stop the start instead of falling back in silence.
func (c TracingConfig) sampler() (sdktrace.Sampler, error) {
	ratio := 1.0
	if c.SamplerArg != "" {
		r, err := strconv.ParseFloat(c.SamplerArg, 64)
		if err != nil || r < 0 || r > 1 {
			return nil, fmt.Errorf("OTEL_TRACES_SAMPLER_ARG=%q: want a ratio from 0 to 1", c.SamplerArg)
		}
		ratio = r
	}
	switch strings.ToLower(c.Sampler) {
	case "", "parentbased_always_on":
		return sdktrace.ParentBased(sdktrace.AlwaysSample()), nil
	case "always_on":
		return sdktrace.AlwaysSample(), nil
	case "always_off":
		return sdktrace.NeverSample(), nil
	case "parentbased_always_off":
		return sdktrace.ParentBased(sdktrace.NeverSample()), nil
	case "traceidratio":
		return sdktrace.TraceIDRatioBased(ratio), nil
	case "parentbased_traceidratio":
		return sdktrace.ParentBased(sdktrace.TraceIDRatioBased(ratio)), nil
	}
	return nil, fmt.Errorf("OTEL_TRACES_SAMPLER=%q: want always_on, always_off, traceidratio or their parentbased_ forms", c.Sampler)
}

// Tracing makes rtstream's spans and carries their context across Kafka. A
// nil *Tracing traces nothing: every method is then a no-op, which is what
// "off" is.
type Tracing struct {
	provider *sdktrace.TracerProvider
	tracer   trace.Tracer
	prop     propagation.TextMapPropagator
	writes   int32
	// roots is the share of the requests without a traceparent that start
	// a trace, when the sampler is parent-based and decides roots by a
	// ratio; -1 otherwise. Such a request is picked (or not) before
	// otelhttp sees it: otelhttp's work on a request it will not record
	// costs ~5 µs and 37 allocations, which at 1% sampling is all cost.
	roots float64
}

// pickedKey marks the context of a request picked to start a trace: the
// sampler records its root span whatever the ratio (it was applied already).
type pickedKey struct{}

// pickedSampler records the roots picked before otelhttp, and leaves the
// rest to the configured sampler.
type pickedSampler struct{ sdktrace.Sampler }

func (s pickedSampler) ShouldSample(p sdktrace.SamplingParameters) sdktrace.SamplingResult {
	if picked, _ := p.ParentContext.Value(pickedKey{}).(bool); picked && !trace.SpanContextFromContext(p.ParentContext).IsValid() {
		return sdktrace.SamplingResult{Decision: sdktrace.RecordAndSample}
	}
	return s.Sampler.ShouldSample(p)
}

// rootShare is the share of root requests the sampler keeps, when it is
// parent-based by ratio; -1 when another sampler decides every request.
func (c TracingConfig) rootShare() float64 {
	switch strings.ToLower(c.Sampler) {
	case "parentbased_traceidratio":
		if r, err := strconv.ParseFloat(c.SamplerArg, 64); err == nil {
			return r
		}
		return 1
	case "parentbased_always_off":
		return 0
	}
	return -1
}

// NewTracing starts the OTLP exporter; it returns nil, nil when cfg is off.
// Shutdown flushes what is pending.
func NewTracing(ctx context.Context, cfg TracingConfig) (*Tracing, error) {
	if !cfg.Enabled() {
		return nil, nil
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	sampler, _ := cfg.sampler()
	// Everything not set here (headers, timeout, TLS, compression) the
	// exporter reads from the OTEL_EXPORTER_OTLP_* variables itself.
	exp, err := otlptracehttp.New(ctx, otlptracehttp.WithEndpointURL(cfg.endpointURL()))
	if err != nil {
		return nil, fmt.Errorf("observability: OTLP exporter: %w", err)
	}
	if cfg.ServiceName == "" {
		cfg.ServiceName = DefaultServiceName
	}
	attrs := []attribute.KeyValue{semconv.ServiceName(cfg.ServiceName)}
	if cfg.ServiceVersion != "" {
		attrs = append(attrs, semconv.ServiceVersion(cfg.ServiceVersion))
	}
	if cfg.InstanceID != "" {
		attrs = append(attrs, semconv.ServiceInstanceID(cfg.InstanceID))
	}
	// The environment's OTEL_RESOURCE_ATTRIBUTES and OTEL_SERVICE_NAME over
	// ours, as the specification wants.
	res, err := resource.New(ctx, resource.WithTelemetrySDK(), resource.WithAttributes(attrs...), resource.WithFromEnv())
	if err != nil {
		return nil, fmt.Errorf("observability: trace resource: %w", err)
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res), sdktrace.WithSampler(pickedSampler{sampler}))
	writes := cfg.TracedWrites
	if writes <= 0 {
		writes = DefaultTracedWrites
	}
	return &Tracing{
		provider: tp,
		tracer:   tp.Tracer("github.com/rtstream/rtstream"),
		prop:     propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}),
		writes:   int32(writes),
		roots:    cfg.rootShare(),
	}, nil
}

// Shutdown exports the spans still pending and stops the exporter.
func (t *Tracing) Shutdown(ctx context.Context) error {
	if t == nil {
		return nil
	}
	return t.provider.Shutdown(ctx)
}

// Start starts a span under ctx's. With tracing off, or without a trace in
// ctx (a trace starts at the HTTP request; a request not picked to start
// one is not traced downstream either), it returns ctx and a span that
// records nothing.
func (t *Tracing) Start(ctx context.Context, name string, kind trace.SpanKind, attrs ...attribute.KeyValue) (context.Context, trace.Span) {
	if t == nil || !trace.SpanContextFromContext(ctx).IsValid() {
		return ctx, trace.SpanFromContext(ctx)
	}
	return t.tracer.Start(ctx, name, trace.WithSpanKind(kind), trace.WithAttributes(attrs...))
}

// Inject writes ctx's trace context into a record's headers (a Watermill
// message's metadata becomes the Kafka record's headers).
func (t *Tracing) Inject(ctx context.Context, headers map[string]string) {
	if t != nil {
		t.prop.Inject(ctx, propagation.MapCarrier(headers))
	}
}

// Extract returns ctx with the trace context of a record's headers.
func (t *Tracing) Extract(ctx context.Context, headers map[string]string) context.Context {
	if t == nil {
		return ctx
	}
	return t.prop.Extract(ctx, propagation.MapCarrier(headers))
}

// HTTP traces every request but the probes and the metrics scrape: it honours
// an incoming traceparent, or starts a trace. The route's name is set later,
// by whoever knows it (NameRequest). A request without a traceparent that a
// ratio sampler would not keep skips otelhttp altogether, and nothing
// downstream traces it.
func (t *Tracing) HTTP(next http.Handler) http.Handler {
	if t == nil {
		return next
	}
	traced := t.otelHTTP(next)
	if t.roots < 0 || t.roots >= 1 {
		return traced
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("traceparent") != "" {
			traced.ServeHTTP(w, r)
			return
		}
		if rand.Float64() >= t.roots {
			next.ServeHTTP(w, r)
			return
		}
		traced.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), pickedKey{}, true)))
	})
}

func (t *Tracing) otelHTTP(next http.Handler) http.Handler {
	return otelhttp.NewHandler(next, "HTTP",
		otelhttp.WithTracerProvider(t.provider),
		otelhttp.WithPropagators(t.prop),
		otelhttp.WithMeterProvider(metricnoop.NewMeterProvider()),
		otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string { return r.Method }),
		otelhttp.WithFilter(func(r *http.Request) bool {
			switch r.URL.Path {
			case "/healthz", "/readyz", "/metrics":
				return false
			}
			return true
		}))
}

// NameRequest names the request's span by its route pattern, known only once
// the router matched it (otelhttp starts the span before).
func NameRequest(ctx context.Context, method, route string) {
	if span := trace.SpanFromContext(ctx); span.IsRecording() && route != "" {
		span.SetName(method + " " + route)
		span.SetAttributes(semconv.HTTPRoute(route))
	}
}

// TraceIDs are the trace_id and span_id log attributes of ctx's span, for a
// log line written with another logger than the request's; none when ctx
// is not traced.
func TraceIDs(ctx context.Context) []any {
	sc := trace.SpanContextFromContext(ctx)
	if !sc.IsValid() {
		return nil
	}
	return []any{"trace_id", sc.TraceID().String(), "span_id", sc.SpanID().String()}
}

// SampledTraceID is the hex trace id of ctx's span when it is sampled, for
// logs and exemplars; "" otherwise.
func SampledTraceID(ctx context.Context) string {
	if sc := trace.SpanContextFromContext(ctx); sc.IsSampled() {
		return sc.TraceID().String()
	}
	return ""
}

// Delivery is the trace of one results record on its way to this instance's
// subscribers: its span is the parent of the socket writes, the first few of
// which get a span each.
type Delivery struct {
	t       *Tracing
	sc      trace.SpanContext
	traceID string
	left    atomic.Int32
}

// StartDelivery records that a results record, whose headers carried
// traceparent and tracestate, reached this instance's fan-out with
// subscribers waiting. It returns nil when tracing is off or the record's
// trace is not sampled: nothing downstream is traced then.
func (t *Tracing) StartDelivery(traceparent, tracestate string, attrs ...attribute.KeyValue) *Delivery {
	if t == nil || !sampledFlag(traceparent) {
		return nil
	}
	ctx := t.prop.Extract(context.Background(), propagation.MapCarrier{"traceparent": traceparent, "tracestate": tracestate})
	_, span := t.tracer.Start(ctx, "deliver", trace.WithSpanKind(trace.SpanKindConsumer), trace.WithAttributes(attrs...))
	defer span.End()
	sc := span.SpanContext()
	if !sc.IsSampled() {
		return nil
	}
	d := &Delivery{t: t, sc: sc, traceID: sc.TraceID().String()}
	d.left.Store(t.writes)
	return d
}

// sampledFlag reads the sampled bit of a W3C traceparent
// ("00-<trace id>-<span id>-<flags>") without parsing the rest: most
// records are not sampled at low ratios, and need no more work.
func sampledFlag(traceparent string) bool {
	n := len(traceparent)
	if n < 55 {
		return false
	}
	flags, err := strconv.ParseUint(traceparent[n-2:], 16, 8)
	return err == nil && flags&1 == 1
}

// TraceID is the delivery's hex trace id.
func (d *Delivery) TraceID() string { return d.traceID }

// Written records a write of the record's results to one subscriber over
// transport, begun at start: a span while this record has writes left to
// trace here, nothing after.
func (d *Delivery) Written(transport string, start time.Time) {
	if d.left.Add(-1) < 0 {
		return
	}
	ctx := trace.ContextWithSpanContext(context.Background(), d.sc)
	_, span := d.t.tracer.Start(ctx, "write "+transport, trace.WithTimestamp(start),
		trace.WithAttributes(attribute.String("rtstream.transport", transport)))
	span.End()
}
