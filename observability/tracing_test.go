package observability

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/trace"

	"github.com/rtstream/rtstream/internal/otlpsink"
)

func TestTracingConfig(t *testing.T) {
	for _, tt := range []struct {
		name    string
		cfg     TracingConfig
		enabled bool
		url     string
		err     string
	}{
		{name: "nothing set", cfg: TracingConfig{}, enabled: false},
		{name: "endpoint", cfg: TracingConfig{Endpoint: "http://c:4318/"}, enabled: true, url: "http://c:4318/v1/traces"},
		{name: "traces endpoint over endpoint", cfg: TracingConfig{Endpoint: "http://c:4318", TracesEndpoint: "http://t:9/x"}, enabled: true, url: "http://t:9/x"},
		{name: "exporter otlp alone", cfg: TracingConfig{Exporter: "otlp"}, enabled: true, url: "http://localhost:4318/v1/traces"},
		{name: "exporter none", cfg: TracingConfig{Exporter: "none", Endpoint: "http://c:4318"}, enabled: false},
		{name: "sdk disabled", cfg: TracingConfig{SDKDisabled: true, Endpoint: "http://c:4318"}, enabled: false},
		{name: "grpc refused", cfg: TracingConfig{Endpoint: "http://c:4317", Protocol: "grpc"}, enabled: true, err: "OTLP over HTTP only"},
		{name: "unknown exporter", cfg: TracingConfig{Exporter: "zipkin"}, enabled: true, err: "want otlp or none"},
		{name: "unknown sampler", cfg: TracingConfig{Endpoint: "http://c", Sampler: "sometimes"}, enabled: true, err: "OTEL_TRACES_SAMPLER"},
		{name: "ratio above 1", cfg: TracingConfig{Endpoint: "http://c", Sampler: "traceidratio", SamplerArg: "1.5"}, enabled: true, err: "from 0 to 1"},
		{name: "ratio not a number", cfg: TracingConfig{Endpoint: "http://c", Sampler: "parentbased_traceidratio", SamplerArg: "x"}, enabled: true, err: "from 0 to 1"},
		{name: "ratio", cfg: TracingConfig{Endpoint: "http://c", Sampler: "parentbased_traceidratio", SamplerArg: "0.01"}, enabled: true, url: "http://c/v1/traces"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.cfg.Enabled(); got != tt.enabled {
				t.Errorf("Enabled() = %v, want %v", got, tt.enabled)
			}
			err := tt.cfg.Validate()
			switch {
			case tt.err == "" && err != nil:
				t.Errorf("Validate() = %v", err)
			case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
				t.Errorf("Validate() = %v, want an error with %q", err, tt.err)
			}
			if tt.url != "" && tt.cfg.endpointURL() != tt.url {
				t.Errorf("endpointURL() = %q, want %q", tt.cfg.endpointURL(), tt.url)
			}
		})
	}
}

func TestSampledFlag(t *testing.T) {
	const id = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-"
	for _, tt := range []struct {
		tp   string
		want bool
	}{
		{id + "01", true},
		{id + "03", true},
		{id + "00", false},
		{id + "02", false},
		{id + "zz", false},
		{"", false},
		{"00-short-01", false},
	} {
		if got := sampledFlag(tt.tp); got != tt.want {
			t.Errorf("sampledFlag(%q) = %v, want %v", tt.tp, got, tt.want)
		}
	}
}

// A nil *Tracing is "off": every method must be safe and do nothing.
func TestTracingOffIsNil(t *testing.T) {
	var tr *Tracing
	ctx := t.Context()
	got, span := tr.Start(ctx, "x", 0)
	if got != ctx || span.IsRecording() {
		t.Error("Start with tracing off changed the context or recorded")
	}
	h := map[string]string{}
	tr.Inject(ctx, h)
	if len(h) != 0 {
		t.Errorf("Inject with tracing off wrote %v", h)
	}
	if d := tr.StartDelivery("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", ""); d != nil {
		t.Error("StartDelivery with tracing off returned a delivery")
	}
	if err := tr.Shutdown(ctx); err != nil {
		t.Error(err)
	}
}

// TestHTTPRootsPickedBeforeOtelhttp: with a parent-based ratio sampler, a
// request without a traceparent starts a trace in the ratio's share only
// (here none, then all), and one with a sampled traceparent is always
// traced, under the caller's span.
func TestHTTPRootsPickedBeforeOtelhttp(t *testing.T) {
	for _, tt := range []struct {
		ratio       string
		roots, want int64 // requests without a traceparent; spans expected in all
	}{
		{"0", 50, 1},
		{"1", 5, 6},
	} {
		t.Run("ratio "+tt.ratio, func(t *testing.T) {
			sink, endpoint, stop, err := otlpsink.Start(true)
			if err != nil {
				t.Fatal(err)
			}
			defer stop()
			tr, err := NewTracing(t.Context(), TracingConfig{Endpoint: endpoint, Sampler: "parentbased_traceidratio", SamplerArg: tt.ratio})
			if err != nil {
				t.Fatal(err)
			}
			h := tr.HTTP(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				_, span := tr.Start(r.Context(), "child", trace.SpanKindInternal)
				span.End() // a child only when the request is traced
				w.WriteHeader(http.StatusAccepted)
			}))
			for range tt.roots {
				h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodPost, "/v1/streams/s/events", nil))
			}
			req := httptest.NewRequest(http.MethodPost, "/v1/streams/s/events", nil)
			req.Header.Set("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
			h.ServeHTTP(httptest.NewRecorder(), req)
			if err := tr.Shutdown(t.Context()); err != nil {
				t.Fatal(err)
			}
			if got := sink.Count(); got != 2*tt.want {
				t.Errorf("%d spans exported, want %d (a server span and its child per traced request)", got, 2*tt.want)
			}
			if got := len(sink.Trace("0af7651916cd43dd8448eb211c80319c")); got != 2 {
				t.Errorf("the caller's trace has %d spans, want 2", got)
			}
		})
	}
}
