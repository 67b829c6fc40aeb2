// Package otlpsink is a real OTLP/HTTP trace receiver for tests and
// benchmarks: it decodes the protobuf exports of any OpenTelemetry SDK with
// the protocol's generated types and keeps the spans flattened for
// assertions. It stands in for a collector where none can be built, so that
// an end-to-end test checks what a real trace store would receive.
package otlpsink

import (
	"compress/gzip"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

// maxBody bounds one export, compressed and decompressed.
const maxBody = 32 << 20

// Span is one received span. IDs are lowercase hex.
type Span struct {
	TraceID, SpanID, ParentSpanID string // ParentSpanID "" for a root span
	Name                          string
	Kind                          string // server, client, producer, consumer, internal, unspecified
	Service                       string // resource attribute service.name
	Instance                      string // resource attribute service.instance.id
	Attrs                         map[string]string
	Links                         []Link
	Events                        []string
	Start, End                    time.Time
	StatusError                   bool
}

// Link is a span's link to another span.
type Link struct{ TraceID, SpanID string }

// Sink receives OTLP/HTTP trace exports on POST /v1/traces.
type Sink struct {
	keep     bool
	count    atomic.Int64
	requests atomic.Int64
	mu       sync.Mutex
	spans    []Span
}

// New makes a sink; keep=false counts spans without storing them, for
// benchmarks that export millions.
func New(keep bool) *Sink { return &Sink{keep: keep} }

// Start serves a new sink on a free loopback port. endpoint is the base URL
// for OTEL_EXPORTER_OTLP_ENDPOINT.
func Start(keep bool) (s *Sink, endpoint string, stop func(), err error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, "", nil, fmt.Errorf("otlpsink: %w", err)
	}
	s = New(keep)
	srv := &http.Server{Handler: s, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	stop = func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}
	return s, "http://" + ln.Addr().String(), stop, nil
}

// ServeHTTP takes one export.
func (s *Sink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.URL.Path != "/v1/traces":
		http.NotFound(w, r)
		return
	case r.Method != http.MethodPost:
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "POST only", http.StatusMethodNotAllowed)
		return
	case !strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-protobuf"):
		http.Error(w, "application/x-protobuf only", http.StatusUnsupportedMediaType)
		return
	}
	body, err := readBody(r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var req coltracepb.ExportTraceServiceRequest
	if err := proto.Unmarshal(body, &req); err != nil {
		http.Error(w, "not an ExportTraceServiceRequest: "+err.Error(), http.StatusBadRequest)
		return
	}
	s.requests.Add(1)
	s.take(&req)
	out, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
	w.Header().Set("Content-Type", "application/x-protobuf")
	_, _ = w.Write(out)
}

// readBody reads the export, gunzipped when it says so, within maxBody.
func readBody(r *http.Request) ([]byte, error) {
	var rd io.Reader = http.MaxBytesReader(nil, r.Body, maxBody)
	if r.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(rd)
		if err != nil {
			return nil, fmt.Errorf("gzip: %w", err)
		}
		defer zr.Close()
		rd = zr
	}
	body, err := io.ReadAll(io.LimitReader(rd, maxBody+1))
	if err != nil {
		return nil, fmt.Errorf("reading the export: %w", err)
	}
	if len(body) > maxBody {
		return nil, errors.New("export over 32 MiB")
	}
	return body, nil
}

// take counts and, when keeping, flattens every span of req.
func (s *Sink) take(req *coltracepb.ExportTraceServiceRequest) {
	var got []Span
	var n int64
	for _, rs := range req.GetResourceSpans() {
		res := attrs(rs.GetResource().GetAttributes())
		for _, ss := range rs.GetScopeSpans() {
			n += int64(len(ss.GetSpans()))
			if !s.keep {
				continue
			}
			for _, sp := range ss.GetSpans() {
				got = append(got, flatten(sp, res["service.name"], res["service.instance.id"]))
			}
		}
	}
	s.count.Add(n)
	if len(got) > 0 {
		s.mu.Lock()
		s.spans = append(s.spans, got...)
		s.mu.Unlock()
	}
}

func flatten(sp *tracepb.Span, service, instance string) Span {
	out := Span{
		TraceID:      hex.EncodeToString(sp.GetTraceId()),
		SpanID:       hex.EncodeToString(sp.GetSpanId()),
		ParentSpanID: hex.EncodeToString(sp.GetParentSpanId()),
		Name:         sp.GetName(),
		Kind:         kind(sp.GetKind()),
		Service:      service,
		Instance:     instance,
		Attrs:        attrs(sp.GetAttributes()),
		Start:        time.Unix(0, int64(sp.GetStartTimeUnixNano())),
		End:          time.Unix(0, int64(sp.GetEndTimeUnixNano())),
		StatusError:  sp.GetStatus().GetCode() == tracepb.Status_STATUS_CODE_ERROR,
	}
	for _, l := range sp.GetLinks() {
		out.Links = append(out.Links, Link{TraceID: hex.EncodeToString(l.GetTraceId()), SpanID: hex.EncodeToString(l.GetSpanId())})
	}
	for _, e := range sp.GetEvents() {
		out.Events = append(out.Events, e.GetName())
	}
	return out
}

func kind(k tracepb.Span_SpanKind) string {
	switch k {
	case tracepb.Span_SPAN_KIND_SERVER:
		return "server"
	case tracepb.Span_SPAN_KIND_CLIENT:
		return "client"
	case tracepb.Span_SPAN_KIND_PRODUCER:
		return "producer"
	case tracepb.Span_SPAN_KIND_CONSUMER:
		return "consumer"
	case tracepb.Span_SPAN_KIND_INTERNAL:
		return "internal"
	}
	return "unspecified"
}

func attrs(kvs []*commonpb.KeyValue) map[string]string {
	out := make(map[string]string, len(kvs))
	for _, kv := range kvs {
		out[kv.GetKey()] = value(kv.GetValue())
	}
	return out
}

// value is an attribute value's string form: decimal numbers, true/false,
// arrays and maps as JSON.
func value(v *commonpb.AnyValue) string {
	switch x := v.GetValue().(type) {
	case *commonpb.AnyValue_StringValue:
		return x.StringValue
	case *commonpb.AnyValue_IntValue:
		return strconv.FormatInt(x.IntValue, 10)
	case *commonpb.AnyValue_BoolValue:
		return strconv.FormatBool(x.BoolValue)
	case *commonpb.AnyValue_DoubleValue:
		return strconv.FormatFloat(x.DoubleValue, 'g', -1, 64)
	case *commonpb.AnyValue_BytesValue:
		return hex.EncodeToString(x.BytesValue)
	case *commonpb.AnyValue_ArrayValue:
		var items []string
		for _, e := range x.ArrayValue.GetValues() {
			items = append(items, value(e))
		}
		b, _ := json.Marshal(items)
		return string(b)
	case *commonpb.AnyValue_KvlistValue:
		b, _ := json.Marshal(attrs(x.KvlistValue.GetValues()))
		return string(b)
	}
	return ""
}

// Spans is a copy of the spans kept, in arrival order.
func (s *Sink) Spans() []Span {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Span(nil), s.spans...)
}

// Trace is the kept spans of one trace.
func (s *Sink) Trace(traceID string) []Span {
	var out []Span
	for _, sp := range s.Spans() {
		if sp.TraceID == traceID {
			out = append(out, sp)
		}
	}
	return out
}

// Count is how many spans were received, kept or not.
func (s *Sink) Count() int64 { return s.count.Load() }

// Requests is how many exports were received.
func (s *Sink) Requests() int64 { return s.requests.Load() }

// Reset forgets everything received.
func (s *Sink) Reset() {
	s.mu.Lock()
	s.spans = nil
	s.mu.Unlock()
	s.count.Store(0)
	s.requests.Store(0)
}

// Wait polls until cond holds for the spans kept, or ctx ends.
func (s *Sink) Wait(ctx context.Context, cond func([]Span) bool) error {
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		if cond(s.Spans()) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("otlpsink: %d spans received, condition not met: %w", s.Count(), ctx.Err())
		case <-t.C:
		}
	}
}
