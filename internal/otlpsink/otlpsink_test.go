package otlpsink

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

// How the SDK hands spans to the exporter: each mode reaches the sink by a
// different path in the SDK, and "direct" is the one that surfaces the
// exporter's own error instead of sending it to the global error handler.
const (
	viaSyncer  = "syncer"
	viaBatcher = "batcher"
	viaDirect  = "direct"
)

func newExporter(t *testing.T, opts ...otlptracehttp.Option) *otlptrace.Exporter {
	t.Helper()
	opts = append(opts,
		otlptracehttp.WithRetry(otlptracehttp.RetryConfig{Enabled: false}),
		otlptracehttp.WithTimeout(5*time.Second))
	exp, err := otlptracehttp.New(context.Background(), opts...)
	if err != nil {
		t.Fatalf("otlptracehttp.New: %v", err)
	}
	return exp
}

// spanSet is what emitSpans produced, for building the expectations.
type spanSet struct {
	parent, child, linked trace.SpanContext
	t0                    time.Time
}

// emitSpans records a server span with a producer child and a consumer span
// in another trace linking to the server span, then hands them to exp the
// way mode says and returns the export error when the mode can see one.
func emitSpans(t *testing.T, exp *otlptrace.Exporter, mode string) (spanSet, error) {
	t.Helper()
	ctx := context.Background()
	rec := tracetest.NewSpanRecorder()
	opts := []sdktrace.TracerProviderOption{
		sdktrace.WithSampler(sdktrace.AlwaysSample()),
		sdktrace.WithResource(resource.NewSchemaless(
			attribute.String("service.name", "rtstream-test"),
			attribute.String("service.instance.id", "instance-1"))),
		sdktrace.WithSpanProcessor(rec),
	}
	switch mode {
	case viaSyncer:
		opts = append(opts, sdktrace.WithSyncer(exp))
	case viaBatcher:
		opts = append(opts, sdktrace.WithBatcher(exp, sdktrace.WithBatchTimeout(time.Hour)))
	}
	tp := sdktrace.NewTracerProvider(opts...)
	tr := tp.Tracer("otlpsink-test")

	t0 := time.Unix(1_700_000_000, 123_456_789)
	pctx, parent := tr.Start(ctx, "GET /v1/streams", trace.WithSpanKind(trace.SpanKindServer),
		trace.WithTimestamp(t0), trace.WithAttributes(
			attribute.String("http.request.method", "GET"),
			attribute.Int("rtstream.subscribers", 42),
			attribute.Int64("rtstream.offset", -7),
			attribute.Bool("rtstream.resumed", true),
			attribute.Float64("rtstream.ratio", 0.25),
			attribute.StringSlice("rtstream.topics", []string{"orders", "a<b&c"}),
			attribute.Int64Slice("rtstream.partitions", []int64{1, 2}),
			attribute.BoolSlice("rtstream.flags", []bool{true, false}),
			attribute.Float64Slice("rtstream.weights", []float64{0.5, 1.5}),
		))
	parent.AddEvent("stream.opened")
	parent.SetStatus(codes.Error, "boom")
	_, child := tr.Start(pctx, "orders publish", trace.WithSpanKind(trace.SpanKindProducer),
		trace.WithTimestamp(t0.Add(time.Millisecond)))
	child.End(trace.WithTimestamp(t0.Add(2 * time.Millisecond)))
	parent.End(trace.WithTimestamp(t0.Add(3 * time.Millisecond)))
	_, linked := tr.Start(ctx, "orders process", trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithTimestamp(t0.Add(4*time.Millisecond)),
		trace.WithLinks(trace.Link{SpanContext: parent.SpanContext()}))
	linked.End(trace.WithTimestamp(t0.Add(5 * time.Millisecond)))

	var err error
	if mode == viaDirect {
		err = exp.ExportSpans(ctx, rec.Ended())
	}
	err = errors.Join(err, tp.ForceFlush(ctx), tp.Shutdown(ctx))
	if mode == viaDirect {
		err = errors.Join(err, exp.Shutdown(ctx))
	}
	return spanSet{parent.SpanContext(), child.SpanContext(), linked.SpanContext(), t0}, err
}

func (ss spanSet) want() map[string]Span {
	at := func(ms int) time.Time { return ss.t0.Add(time.Duration(ms) * time.Millisecond) }
	return map[string]Span{
		"GET /v1/streams": {
			TraceID: ss.parent.TraceID().String(), SpanID: ss.parent.SpanID().String(),
			Name: "GET /v1/streams", Kind: "server",
			Service: "rtstream-test", Instance: "instance-1",
			Attrs: map[string]string{
				"http.request.method":  "GET",
				"rtstream.subscribers": "42",
				"rtstream.offset":      "-7",
				"rtstream.resumed":     "true",
				"rtstream.ratio":       "0.25",
				"rtstream.topics":      `["orders","a<b&c"]`,
				"rtstream.partitions":  "[1,2]",
				"rtstream.flags":       "[true,false]",
				"rtstream.weights":     "[0.5,1.5]",
			},
			Events: []string{"stream.opened"},
			Start:  at(0), End: at(3),
			StatusError: true,
		},
		"orders publish": {
			TraceID: ss.child.TraceID().String(), SpanID: ss.child.SpanID().String(),
			ParentSpanID: ss.parent.SpanID().String(),
			Name:         "orders publish", Kind: "producer",
			Service: "rtstream-test", Instance: "instance-1",
			Attrs: map[string]string{},
			Start: at(1), End: at(2),
		},
		"orders process": {
			TraceID: ss.linked.TraceID().String(), SpanID: ss.linked.SpanID().String(),
			Name: "orders process", Kind: "consumer",
			Service: "rtstream-test", Instance: "instance-1",
			Attrs: map[string]string{},
			Links: []Link{{TraceID: ss.parent.TraceID().String(), SpanID: ss.parent.SpanID().String()}},
			Start: at(4), End: at(5),
		},
	}
}

func TestRealSDKExport(t *testing.T) {
	tests := []struct {
		name string
		mode string
		opts func(endpoint string) []otlptracehttp.Option
	}{
		{"endpoint URL, gzip, syncer", viaSyncer, func(e string) []otlptracehttp.Option {
			return []otlptracehttp.Option{otlptracehttp.WithEndpointURL(e + "/v1/traces"),
				otlptracehttp.WithCompression(otlptracehttp.GzipCompression)}
		}},
		{"endpoint URL, no compression, batcher", viaBatcher, func(e string) []otlptracehttp.Option {
			return []otlptracehttp.Option{otlptracehttp.WithEndpointURL(e + "/v1/traces"),
				otlptracehttp.WithCompression(otlptracehttp.NoCompression)}
		}},
		{"host:port insecure, gzip, direct", viaDirect, func(e string) []otlptracehttp.Option {
			return []otlptracehttp.Option{otlptracehttp.WithEndpoint(strings.TrimPrefix(e, "http://")),
				otlptracehttp.WithInsecure(), otlptracehttp.WithCompression(otlptracehttp.GzipCompression)}
		}},
		{"host:port insecure, no compression, direct", viaDirect, func(e string) []otlptracehttp.Option {
			return []otlptracehttp.Option{otlptracehttp.WithEndpoint(strings.TrimPrefix(e, "http://")),
				otlptracehttp.WithInsecure(), otlptracehttp.WithCompression(otlptracehttp.NoCompression)}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s, endpoint, stop, err := Start(true)
			if err != nil {
				t.Fatal(err)
			}
			defer stop()
			set, err := emitSpans(t, newExporter(t, tc.opts(endpoint)...), tc.mode)
			if err != nil {
				t.Fatalf("export: %v", err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := s.Wait(ctx, func(sp []Span) bool { return len(sp) >= 3 }); err != nil {
				t.Fatal(err)
			}
			checkSpans(t, s.Spans(), set.want())
			if got := s.Count(); got != 3 {
				t.Errorf("Count = %d, want 3", got)
			}
			if r := s.Requests(); r < 1 || r > 3 || (tc.mode == viaSyncer && r != 3) {
				t.Errorf("Requests = %d (mode %s)", r, tc.mode)
			}
			tid := set.parent.TraceID().String()
			if got := s.Trace(strings.ToUpper(tid)); len(got) != 2 {
				t.Errorf("Trace(%s) has %d spans, want parent and child", tid, len(got))
			}
		})
	}
}

func checkSpans(t *testing.T, got []Span, want map[string]Span) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d spans, want %d: %+v", len(got), len(want), got)
	}
	for _, g := range got {
		w, ok := want[g.Name]
		if !ok {
			t.Errorf("unexpected span %q", g.Name)
			continue
		}
		if !g.Start.Equal(w.Start) || !g.End.Equal(w.End) {
			t.Errorf("%s: times %v..%v, want %v..%v", g.Name, g.Start, g.End, w.Start, w.End)
		}
		g.Start, g.End, w.Start, w.End = time.Time{}, time.Time{}, time.Time{}, time.Time{}
		if !reflect.DeepEqual(g, w) {
			t.Errorf("%s:\n got %+v\nwant %+v", g.Name, g, w)
		}
	}
}

// An exporter configured for OTLP/JSON must fail loudly, not appear to work.
func TestRealSDKExportJSONRejected(t *testing.T) {
	s, endpoint, stop, err := Start(true)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	exp := newExporter(t, otlptracehttp.WithEndpointURL(endpoint+"/v1/traces"),
		otlptracehttp.WithEncoding(otlptracehttp.EncodingJSON))
	_, err = emitSpans(t, exp, viaDirect)
	if err == nil || !strings.Contains(err.Error(), "415") {
		t.Fatalf("export error = %v, want a 415", err)
	}
	if s.Count() != 0 || s.Requests() != 0 {
		t.Errorf("Count %d, Requests %d after a rejected export", s.Count(), s.Requests())
	}
}

func gz(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// request builds an export of n spans in trace tid, with a fixed resource.
func request(tid byte, n int) *coltracepb.ExportTraceServiceRequest {
	var spans []*tracepb.Span
	for i := range n {
		spans = append(spans, &tracepb.Span{
			TraceId:      bytes.Repeat([]byte{tid}, 16),
			SpanId:       []byte{0, 0, 0, 0, 0, 0, tid, byte(i + 1)},
			ParentSpanId: make([]byte, 8), // all zero: still a root span
			Name:         "span",
			Kind:         tracepb.Span_SPAN_KIND_INTERNAL,
			Attributes: []*commonpb.KeyValue{{Key: "i",
				Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_IntValue{IntValue: int64(i)}}}},
		})
	}
	return &coltracepb.ExportTraceServiceRequest{ResourceSpans: []*tracepb.ResourceSpans{{
		Resource: &resourcepb.Resource{Attributes: []*commonpb.KeyValue{{Key: "service.name",
			Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: "svc"}}}}},
		ScopeSpans: []*tracepb.ScopeSpans{{Spans: spans}},
	}}}
}

func marshal(t testing.TB, m proto.Message) []byte {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestRejects(t *testing.T) {
	huge := make([]byte, maxBody+1)
	bomb := gz(t, huge)
	const pb = "application/x-protobuf"
	tests := []struct {
		name, method, path, ctype, enc string
		body                           []byte
		want                           int
	}{
		{"undecodable body", "POST", "/v1/traces", pb, "", []byte{0xff, 0xff, 0xff}, 400},
		{"truncated message", "POST", "/v1/traces", pb, "", marshal(t, request(1, 2))[:20], 400},
		{"gzip header but not gzip", "POST", "/v1/traces", pb, "gzip", []byte("plain"), 400},
		{"gzip of garbage", "POST", "/v1/traces", pb, "gzip", gz(t, []byte{0xff, 0xff, 0xff}), 400},
		{"GET", "GET", "/v1/traces", pb, "", nil, 405},
		{"PUT", "PUT", "/v1/traces", pb, "", marshal(t, request(1, 1)), 405},
		{"metrics path", "POST", "/v1/metrics", pb, "", marshal(t, request(1, 1)), 404},
		{"root path", "GET", "/", "", "", nil, 404},
		{"OTLP/JSON", "POST", "/v1/traces", "application/json", "", []byte("{}"), 415},
		{"no content type", "POST", "/v1/traces", "", "", marshal(t, request(1, 1)), 415},
		{"brotli", "POST", "/v1/traces", pb, "br", marshal(t, request(1, 1)), 415},
		{"over the limit", "POST", "/v1/traces", pb, "", huge, 413},
		{"gzip bomb", "POST", "/v1/traces", pb, "gzip", bomb, 413},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := New(true)
			req := httptest.NewRequest(tc.method, tc.path, bytes.NewReader(tc.body))
			if tc.ctype != "" {
				req.Header.Set("Content-Type", tc.ctype)
			}
			if tc.enc != "" {
				req.Header.Set("Content-Encoding", tc.enc)
			}
			rec := httptest.NewRecorder()
			s.ServeHTTP(rec, req)
			if rec.Code != tc.want {
				t.Fatalf("status %d, want %d: %s", rec.Code, tc.want, rec.Body)
			}
			if tc.want == 405 && rec.Header().Get("Allow") != "POST" {
				t.Errorf("Allow = %q", rec.Header().Get("Allow"))
			}
			if s.Count() != 0 || s.Requests() != 0 || len(s.Spans()) != 0 {
				t.Errorf("a rejected request was counted: %d spans, %d requests", s.Count(), s.Requests())
			}
		})
	}
}

// Over the wire, as an exporter other than the Go SDK would send it.
func TestAcceptsOverHTTP(t *testing.T) {
	s, endpoint, stop, err := Start(true)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	tests := []struct {
		name, ctype, enc string
		body             []byte
		spans            int
	}{
		{"plain", "application/x-protobuf", "", marshal(t, request(1, 2)), 2},
		{"gzip, parameter on the media type", "application/x-protobuf; charset=binary", "gzip", gz(t, marshal(t, request(2, 3))), 3},
		{"empty export", "application/x-protobuf", "identity", nil, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s.Reset()
			req, err := http.NewRequest(http.MethodPost, endpoint+"/v1/traces", bytes.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", tc.ctype)
			if tc.enc != "" {
				req.Header.Set("Content-Encoding", tc.enc)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/x-protobuf" {
				t.Fatalf("status %d, Content-Type %q: %s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
			}
			if err := proto.Unmarshal(body, &coltracepb.ExportTraceServiceResponse{}); err != nil {
				t.Errorf("response is not an ExportTraceServiceResponse: %v", err)
			}
			if s.Requests() != 1 || s.Count() != int64(tc.spans) || len(s.Spans()) != tc.spans {
				t.Errorf("Requests %d, Count %d, kept %d; want 1, %d, %d",
					s.Requests(), s.Count(), len(s.Spans()), tc.spans, tc.spans)
			}
			for _, sp := range s.Spans() {
				if sp.ParentSpanID != "" || sp.Service != "svc" || sp.Instance != "" || sp.Kind != "internal" ||
					!sp.Start.IsZero() || len(sp.TraceID) != 32 || len(sp.SpanID) != 16 {
					t.Errorf("span %+v", sp)
				}
			}
		})
	}
}

func TestCountOnly(t *testing.T) {
	s, endpoint, stop, err := Start(false)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	for _, mode := range []string{viaSyncer, viaBatcher, viaDirect} {
		exp := newExporter(t, otlptracehttp.WithEndpointURL(endpoint+"/v1/traces"),
			otlptracehttp.WithCompression(otlptracehttp.GzipCompression))
		set, err := emitSpans(t, exp, mode)
		if err != nil {
			t.Fatalf("%s: %v", mode, err)
		}
		if got := s.Trace(set.parent.TraceID().String()); got != nil {
			t.Errorf("Trace kept %d spans with keep=false", len(got))
		}
	}
	if got := s.Count(); got != 9 {
		t.Errorf("Count = %d, want 9", got)
	}
	if got := s.Spans(); got != nil {
		t.Errorf("Spans kept %d with keep=false", len(got))
	}
	if r := s.Requests(); r < 3 || r > 9 {
		t.Errorf("Requests = %d, want 3..9", r)
	}

	// Nothing is ever kept, so Wait can only time out, and must say what
	// it saw.
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Millisecond)
	defer cancel()
	err = s.Wait(ctx, func(sp []Span) bool { return len(sp) > 0 })
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "0 spans kept (9 received)") {
		t.Errorf("Wait = %v", err)
	}
}

func TestResetAndCopies(t *testing.T) {
	s := New(true)
	post := func(tid byte, n int) {
		req := httptest.NewRequest("POST", "/v1/traces", bytes.NewReader(marshal(t, request(tid, n))))
		req.Header.Set("Content-Type", "application/x-protobuf")
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, req)
		if rec.Code != 200 {
			t.Fatalf("status %d: %s", rec.Code, rec.Body)
		}
	}
	post(0xab, 2)
	post(0xcd, 1)

	got := s.Spans()
	got[0].Attrs["i"] = "changed"
	got[0].Events = append(got[0].Events, "added")
	if again := s.Spans(); again[0].Attrs["i"] != "0" || len(again[0].Events) != 0 {
		t.Errorf("editing a returned span changed the sink: %+v", again[0])
	}
	if tr := s.Trace(strings.Repeat("ab", 16)); len(tr) != 2 {
		t.Errorf("Trace(ab…) = %d spans, want 2", len(tr))
	}
	if tr := s.Trace("nope"); tr != nil {
		t.Errorf("Trace of an unknown ID = %v", tr)
	}

	s.Reset()
	if s.Count() != 0 || s.Requests() != 0 || s.Spans() != nil {
		t.Errorf("after Reset: Count %d, Requests %d, %d spans", s.Count(), s.Requests(), len(s.Spans()))
	}
	post(0xef, 1)
	if s.Count() != 1 || len(s.Spans()) != 1 || len(got) != 3 {
		t.Errorf("after Reset and one span: Count %d, kept %d, old copy %d", s.Count(), len(s.Spans()), len(got))
	}
}

func TestConcurrent(t *testing.T) {
	s := New(true)
	const writers, posts, perPost = 8, 25, 3
	body := marshal(t, request(7, perPost))
	ctx, cancel := context.WithCancel(context.Background())
	var readers sync.WaitGroup
	readers.Go(func() {
		for ctx.Err() == nil {
			for _, sp := range s.Trace(strings.Repeat("07", 16)) {
				_ = sp.Attrs["i"]
			}
			_ = s.Count() + s.Requests()
		}
	})
	var wg sync.WaitGroup
	for range writers {
		wg.Go(func() {
			for range posts {
				req := httptest.NewRequest("POST", "/v1/traces", bytes.NewReader(body))
				req.Header.Set("Content-Type", "application/x-protobuf")
				rec := httptest.NewRecorder()
				s.ServeHTTP(rec, req)
				if rec.Code != 200 {
					t.Errorf("status %d", rec.Code)
				}
			}
		})
	}
	wg.Wait()
	wctx, wcancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer wcancel()
	if err := s.Wait(wctx, func(sp []Span) bool { return len(sp) == writers*posts*perPost }); err != nil {
		t.Error(err)
	}
	cancel()
	readers.Wait()
	if s.Count() != writers*posts*perPost || s.Requests() != writers*posts {
		t.Errorf("Count %d, Requests %d", s.Count(), s.Requests())
	}
}

func TestAttrString(t *testing.T) {
	str := func(s string) *commonpb.AnyValue {
		return &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: s}}
	}
	num := func(i int64) *commonpb.AnyValue {
		return &commonpb.AnyValue{Value: &commonpb.AnyValue_IntValue{IntValue: i}}
	}
	dbl := func(f float64) *commonpb.AnyValue {
		return &commonpb.AnyValue{Value: &commonpb.AnyValue_DoubleValue{DoubleValue: f}}
	}
	arr := func(vs ...*commonpb.AnyValue) *commonpb.AnyValue {
		return &commonpb.AnyValue{Value: &commonpb.AnyValue_ArrayValue{ArrayValue: &commonpb.ArrayValue{Values: vs}}}
	}
	kvl := func(kvs ...*commonpb.KeyValue) *commonpb.AnyValue {
		return &commonpb.AnyValue{Value: &commonpb.AnyValue_KvlistValue{KvlistValue: &commonpb.KeyValueList{Values: kvs}}}
	}
	tests := []struct {
		name string
		in   *commonpb.AnyValue
		want string
	}{
		{"nil", nil, ""},
		{"unset", &commonpb.AnyValue{}, ""},
		{"string", str("a b"), "a b"},
		{"negative int", num(-12), "-12"},
		{"bool", &commonpb.AnyValue{Value: &commonpb.AnyValue_BoolValue{}}, "false"},
		{"double", dbl(1.5), "1.5"},
		{"large double", dbl(1e21), "1e+21"},
		{"bytes", &commonpb.AnyValue{Value: &commonpb.AnyValue_BytesValue{BytesValue: []byte{1, 2, 0xff}}}, "AQL/"},
		{"empty array", arr(), "[]"},
		{"mixed array", arr(str("x"), num(3), dbl(0.5), dbl(math.NaN()), dbl(math.Inf(-1))), `["x",3,0.5,"NaN","-Inf"]`},
		{"nested", arr(arr(num(1)), kvl(&commonpb.KeyValue{Key: "k", Value: str("<v>")})), `[[1],{"k":"<v>"}]`},
		{"kvlist sorted", kvl(&commonpb.KeyValue{Key: "b", Value: num(2)}, &commonpb.KeyValue{Key: "a"}), `{"a":null,"b":2}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := attrString(tc.in); got != tc.want {
				t.Errorf("attrString = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestKindName(t *testing.T) {
	tests := map[tracepb.Span_SpanKind]string{
		tracepb.Span_SPAN_KIND_UNSPECIFIED: "unspecified",
		tracepb.Span_SPAN_KIND_INTERNAL:    "internal",
		tracepb.Span_SPAN_KIND_SERVER:      "server",
		tracepb.Span_SPAN_KIND_CLIENT:      "client",
		tracepb.Span_SPAN_KIND_PRODUCER:    "producer",
		tracepb.Span_SPAN_KIND_CONSUMER:    "consumer",
		tracepb.Span_SpanKind(99):          "unspecified",
	}
	for k, want := range tests {
		if got := kindName(k); got != want {
			t.Errorf("kindName(%v) = %q, want %q", k, got, want)
		}
	}
}

func TestStopTwice(t *testing.T) {
	_, endpoint, stop, err := Start(true)
	if err != nil {
		t.Fatal(err)
	}
	stop()
	stop()
	resp, err := http.Post(endpoint+"/v1/traces", "application/x-protobuf", nil)
	if err == nil {
		resp.Body.Close()
		t.Fatal("the sink still answers after stop")
	}
}
