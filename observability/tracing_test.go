package observability

import (
	"strings"
	"testing"
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
