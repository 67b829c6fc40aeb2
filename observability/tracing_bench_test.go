package observability

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// BenchmarkHTTPTracing is the HTTP layer's share of tracing's cost: a
// handler alone (tracing off), behind otelhttp with a sampler that keeps
// nothing (every request goes through otelhttp), and at 1% with the roots
// picked before otelhttp. The exporter's endpoint does not answer: only the
// request path is measured.
func BenchmarkHTTPTracing(b *testing.B) {
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(202) })
	on, err := NewTracing(b.Context(), TracingConfig{Endpoint: "http://127.0.0.1:1", Sampler: "parentbased_traceidratio", SamplerArg: "0.01"})
	if err != nil {
		b.Fatal(err)
	}
	defer on.Shutdown(b.Context())
	never, _ := NewTracing(b.Context(), TracingConfig{Endpoint: "http://127.0.0.1:1", Sampler: "always_off"})
	defer never.Shutdown(b.Context())
	for _, c := range []struct {
		name string
		h    http.Handler
	}{{"off", ok}, {"never", never.HTTP(ok)}, {"1pct", on.HTTP(ok)}} {
		b.Run(c.name, func(b *testing.B) {
			req := httptest.NewRequest("POST", "/v1/streams/x/events", nil)
			b.ReportAllocs()
			for b.Loop() {
				w := httptest.NewRecorder()
				c.h.ServeHTTP(w, req)
			}
		})
	}
}
