// Package otlpsink is a real OTLP/HTTP trace receiver for tests and
// benchmarks. It decodes the protobuf exports of any OpenTelemetry SDK with
// the protocol's own generated types, so an end-to-end test checks what a
// real collector would receive rather than what a mock was told, without
// needing a collector binary or container.
package otlpsink

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"mime"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

// maxBody bounds one export both as sent and after gunzip, so a runaway
// exporter or a gzip bomb fails one request instead of the test process.
const maxBody = 32 << 20

// tracesPath is the OTLP/HTTP default path for traces; exporters append it
// to OTEL_EXPORTER_OTLP_ENDPOINT.
const tracesPath = "/v1/traces"

// Span is one received span, flattened so tests can compare plain strings
// instead of walking protobuf messages. IDs are lowercase hex.
type Span struct {
	TraceID, SpanID, ParentSpanID string // ParentSpanID "" for a root span
	Name                          string
	Kind                          string            // "server", "client", "producer", "consumer", "internal", "unspecified"
	Service                       string            // resource attribute service.name
	Instance                      string            // resource attribute service.instance.id ("" when absent)
	Attrs                         map[string]string // span attributes in string form; see attrString
	Links                         []Link
	Events                        []string // span event names
	Start, End                    time.Time
	StatusError                   bool // status code ERROR
}

// Link is kept as IDs only: tests follow links to other spans, and the
// link's attributes have not been needed for that.
type Link struct{ TraceID, SpanID string }

// Sink stands in for a collector. One mutex guards the counters and the
// spans together so Reset and a concurrent export never leave Count out of
// step with Spans; it is taken once per export, not per span.
type Sink struct {
	keep     bool
	mu       sync.Mutex
	count    int64
	requests int64
	spans    []Span
}

// New makes a sink. keep=false only counts, so a benchmark exporting
// millions of spans measures the exporter, not this sink's memory.
func New(keep bool) *Sink { return &Sink{keep: keep} }

// Start serves a new sink on loopback only, on a port the kernel picks, so
// parallel tests never collide and nothing is exposed off the machine.
// endpoint is the base URL, the value for OTEL_EXPORTER_OTLP_ENDPOINT.
// stop is safe to call more than once.
func Start(keep bool) (s *Sink, endpoint string, stop func(), err error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, "", nil, fmt.Errorf("otlpsink: listening: %w", err)
	}
	s = New(keep)
	srv := &http.Server{Handler: s, ReadHeaderTimeout: 5 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(ln) // always ErrServerClosed after stop
	}()
	stop = sync.OnceFunc(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if srv.Shutdown(ctx) != nil {
			_ = srv.Close() // an exporter still mid-request must not hang the test
		}
		<-done
	})
	return s, "http://" + ln.Addr().String(), stop, nil
}

// ServeHTTP answers like a collector's OTLP/HTTP receiver, so exporters see
// the same status codes (and retry behaviour) they would in production.
func (s *Sink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != tracesPath {
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "method not allowed: POST only", http.StatusMethodNotAllowed)
		return
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/x-protobuf" {
		http.Error(w, "unsupported media type: application/x-protobuf only", http.StatusUnsupportedMediaType)
		return
	}
	body, err := readBody(w, r)
	if err != nil {
		http.Error(w, err.Error(), statusOf(err))
		return
	}
	var req coltracepb.ExportTraceServiceRequest
	if err := proto.Unmarshal(body, &req); err != nil {
		http.Error(w, fmt.Sprintf("not an ExportTraceServiceRequest: %v", err), http.StatusBadRequest)
		return
	}
	out, err := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
	if err != nil {
		http.Error(w, fmt.Sprintf("encoding the response: %v", err), http.StatusInternalServerError)
		return
	}
	s.take(&req)
	w.Header().Set("Content-Type", "application/x-protobuf")
	_, _ = w.Write(out)
}

// errEncoding and errTooLarge pick the status code; the rest is 400.
var (
	errEncoding = errors.New("unsupported Content-Encoding: gzip or identity only")
	errTooLarge = fmt.Errorf("export over %d bytes", maxBody)
)

func statusOf(err error) int {
	var mbe *http.MaxBytesError
	switch {
	case errors.Is(err, errEncoding):
		return http.StatusUnsupportedMediaType
	case errors.Is(err, errTooLarge), errors.As(err, &mbe):
		return http.StatusRequestEntityTooLarge
	}
	return http.StatusBadRequest
}

// readBody applies maxBody before and after gunzip: MaxBytesReader alone
// would let a small gzip body expand without bound.
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	var rd io.Reader = http.MaxBytesReader(w, r.Body, maxBody)
	switch enc := strings.ToLower(strings.TrimSpace(r.Header.Get("Content-Encoding"))); enc {
	case "", "identity":
	case "gzip", "x-gzip":
		zr, err := gzip.NewReader(rd)
		if err != nil {
			return nil, fmt.Errorf("gzip: %w", err)
		}
		defer zr.Close()
		rd = zr
	default:
		return nil, fmt.Errorf("%q: %w", enc, errEncoding)
	}
	body, err := io.ReadAll(io.LimitReader(rd, maxBody+1))
	if err != nil {
		return nil, fmt.Errorf("reading the export: %w", err)
	}
	if len(body) > maxBody {
		return nil, errTooLarge
	}
	return body, nil
}

// take flattens outside the lock so concurrent exporters only contend for
// the append.
func (s *Sink) take(req *coltracepb.ExportTraceServiceRequest) {
	var got []Span
	var n int64
	for _, rs := range req.GetResourceSpans() {
		var service, instance string
		for _, kv := range rs.GetResource().GetAttributes() {
			switch kv.GetKey() {
			case "service.name":
				service = attrString(kv.GetValue())
			case "service.instance.id":
				instance = attrString(kv.GetValue())
			}
		}
		for _, ss := range rs.GetScopeSpans() {
			n += int64(len(ss.GetSpans()))
			if !s.keep {
				continue
			}
			for _, sp := range ss.GetSpans() {
				got = append(got, flatten(sp, service, instance))
			}
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests++
	s.count += n
	s.spans = append(s.spans, got...)
}

func flatten(sp *tracepb.Span, service, instance string) Span {
	out := Span{
		TraceID:      id(sp.GetTraceId()),
		SpanID:       id(sp.GetSpanId()),
		ParentSpanID: id(sp.GetParentSpanId()),
		Name:         sp.GetName(),
		Kind:         kindName(sp.GetKind()),
		Service:      service,
		Instance:     instance,
		Attrs:        make(map[string]string, len(sp.GetAttributes())),
		Start:        unixNano(sp.GetStartTimeUnixNano()),
		End:          unixNano(sp.GetEndTimeUnixNano()),
		StatusError:  sp.GetStatus().GetCode() == tracepb.Status_STATUS_CODE_ERROR,
	}
	for _, kv := range sp.GetAttributes() {
		out.Attrs[kv.GetKey()] = attrString(kv.GetValue())
	}
	for _, l := range sp.GetLinks() {
		out.Links = append(out.Links, Link{TraceID: id(l.GetTraceId()), SpanID: id(l.GetSpanId())})
	}
	for _, e := range sp.GetEvents() {
		out.Events = append(out.Events, e.GetName())
	}
	return out
}

// id maps an all-zero ID to "": some exporters send a zero parent span ID
// for a root span instead of leaving the field empty.
func id(b []byte) string {
	for _, c := range b {
		if c != 0 {
			return hex.EncodeToString(b)
		}
	}
	return ""
}

// unixNano keeps an unset timestamp as the zero time, so IsZero detects it,
// instead of turning it into 1970.
func unixNano(ns uint64) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, int64(ns))
}

func kindName(k tracepb.Span_SpanKind) string {
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

// attrString gives scalars the form a test would write as a literal
// (strings as is, ints in decimal, bools "true"/"false", doubles shortest,
// bytes base64 as in OTLP/JSON) and arrays and maps as compact JSON with
// native element types, e.g. [1,2] and ["a","b"]. An empty value is "".
func attrString(v *commonpb.AnyValue) string {
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
		return base64.StdEncoding.EncodeToString(x.BytesValue)
	case *commonpb.AnyValue_ArrayValue, *commonpb.AnyValue_KvlistValue:
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false) // keep <, > and & readable in assertions
		if err := enc.Encode(jsonOf(v)); err != nil {
			return fmt.Sprintf("%v", jsonOf(v)) // unreachable: jsonOf yields only encodable values
		}
		return strings.TrimSuffix(buf.String(), "\n")
	}
	return ""
}

// jsonOf maps an AnyValue onto values encoding/json renders natively.
// Non-finite doubles become strings because JSON has no literal for them.
func jsonOf(v *commonpb.AnyValue) any {
	switch x := v.GetValue().(type) {
	case *commonpb.AnyValue_StringValue:
		return x.StringValue
	case *commonpb.AnyValue_IntValue:
		return x.IntValue
	case *commonpb.AnyValue_BoolValue:
		return x.BoolValue
	case *commonpb.AnyValue_DoubleValue:
		if math.IsInf(x.DoubleValue, 0) || math.IsNaN(x.DoubleValue) {
			return strconv.FormatFloat(x.DoubleValue, 'g', -1, 64)
		}
		return x.DoubleValue
	case *commonpb.AnyValue_BytesValue:
		return x.BytesValue // encoding/json writes []byte as base64
	case *commonpb.AnyValue_ArrayValue:
		out := make([]any, 0, len(x.ArrayValue.GetValues()))
		for _, e := range x.ArrayValue.GetValues() {
			out = append(out, jsonOf(e))
		}
		return out
	case *commonpb.AnyValue_KvlistValue:
		out := make(map[string]any, len(x.KvlistValue.GetValues()))
		for _, kv := range x.KvlistValue.GetValues() {
			out[kv.GetKey()] = jsonOf(kv.GetValue())
		}
		return out
	}
	return nil
}

// Spans deep-copies, so a test may edit what it got (or hold it across a
// Reset) while exports keep arriving.
func (s *Sink) Spans() []Span {
	s.mu.Lock()
	defer s.mu.Unlock()
	return copySpans(s.spans, func(Span) bool { return true })
}

// Trace is the common question of an end-to-end test: what did one request
// produce across every process that exported here. traceID is hex, in
// either case.
func (s *Sink) Trace(traceID string) []Span {
	traceID = strings.ToLower(traceID)
	s.mu.Lock()
	defer s.mu.Unlock()
	return copySpans(s.spans, func(sp Span) bool { return sp.TraceID == traceID })
}

func copySpans(in []Span, match func(Span) bool) []Span {
	var out []Span
	for _, sp := range in {
		if !match(sp) {
			continue
		}
		attrs := make(map[string]string, len(sp.Attrs))
		for k, v := range sp.Attrs {
			attrs[k] = v
		}
		sp.Attrs = attrs
		sp.Links = append([]Link(nil), sp.Links...)
		sp.Events = append([]string(nil), sp.Events...)
		out = append(out, sp)
	}
	return out
}

// Count includes spans not kept, so a keep=false benchmark can still check
// that everything arrived.
func (s *Sink) Count() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.count
}

// Requests counts exports accepted (answered 200); a batching exporter
// sends fewer requests than spans, which a benchmark may want to see.
func (s *Sink) Requests() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests
}

// Reset lets one sink serve several phases of a test without the spans of
// an earlier phase satisfying a later Wait.
func (s *Sink) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.spans, s.count, s.requests = nil, 0, 0
}

// Wait exists because exporters batch and retry on their own schedule: a
// test can only poll until what it expects has arrived. It checks every
// 50 ms; on timeout the error wraps ctx.Err() and says how many spans the
// last check saw, which is usually enough to tell "nothing exported" from
// "exported, but not what was expected".
func (s *Sink) Wait(ctx context.Context, cond func([]Span) bool) error {
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		last := s.Spans()
		if cond(last) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("otlpsink: condition not met with %d spans kept (%d received): %w",
				len(last), s.Count(), ctx.Err())
		case <-t.C:
		}
	}
}
