// Package middleware is rtstream's HTTP middleware: request ids, the access
// log with a request-scoped slog logger, and panic recovery. Wrapped response
// writers keep Flush and Unwrap working, which server-sent events need.
package middleware

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"
	"go.opentelemetry.io/otel/trace"

	"github.com/rtstream/rtstream/observability"
	"github.com/rtstream/rtstream/problem"
)

// RequestIDHeader carries the request id in and out.
const RequestIDHeader = "X-Request-ID"

// validRequestID accepts a caller's id only when it is short and printable, so
// it cannot inject into logs or headers.
func validRequestID(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for i := 0; i < len(id); i++ {
		if id[i] < 0x21 || id[i] > 0x7e {
			return false
		}
	}
	return true
}

func newRequestID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// statusWriter records the status and size of an answer.
type statusWriter struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.bytes += int64(n)
	return n, err
}

// Flush lets handlers stream through the wrapper.
func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the connection.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Hijack hands the connection over. The handler that takes it writes its
// own status line, unseen here: the ones of this API answer 200 (SSE) or
// passed 101 through WriteHeader first (WebSocket), so an unset status is
// recorded as 200.
func (w *statusWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err == nil && w.status == 0 {
		w.status = http.StatusOK
	}
	return conn, brw, err
}

type keyIDKey struct{}

// keyIDSlot is where Auth, deeper in the chain, leaves the principal's id for
// the access log line written here.
func keyIDSlot(ctx context.Context) *string {
	p, _ := ctx.Value(keyIDKey{}).(*string)
	return p
}

// Log gives every request an id (the caller's X-Request-ID when it is sane),
// returns it, puts a logger carrying it into the context, and logs one line
// when the request ends: method, route pattern (never the raw URL, whose query
// may hold an api_key), status, bytes, duration, client IP and key id.
// clientIP, when set, says who the client is (behind trusted proxies).
func Log(base *slog.Logger, clientIP func(*http.Request) string) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			start := time.Now()
			id := r.Header.Get(RequestIDHeader)
			if !validRequestID(id) {
				id = newRequestID()
			}
			w.Header().Set(RequestIDHeader, id)
			l := base.With("request_id", id)
			if sc := trace.SpanContextFromContext(r.Context()); sc.IsValid() {
				// Every line of a traced request, so a trace finds its logs.
				l = l.With("trace_id", sc.TraceID().String(), "span_id", sc.SpanID().String())
			}
			sw := &statusWriter{ResponseWriter: w}
			keyID := new(string)
			ctx := context.WithValue(observability.WithLogger(r.Context(), l), keyIDKey{}, keyID)
			// Deferred: a handler that aborts its connection (a slow
			// stream) panics through here and is still logged.
			defer func() {
				route := chi.RouteContext(r.Context()).RoutePattern()
				client := r.RemoteAddr
				if clientIP != nil {
					client = clientIP(r)
				}
				status := sw.status
				if v := recover(); v != nil {
					defer panic(v)
					if status == 0 {
						status = http.StatusInternalServerError
					}
				}
				l.LogAttrs(r.Context(), slog.LevelInfo, "request",
					slog.String("method", r.Method),
					slog.String("route", route),
					slog.Int("status", status),
					slog.Int64("bytes", sw.bytes),
					slog.Duration("duration", time.Since(start)),
					slog.String("client_ip", client),
					slog.String("key_id", *keyID),
				)
			}()
			next.ServeHTTP(sw, r.WithContext(ctx))
		})
	}
}

// Recover turns a panic in a handler into a logged 500 problem, unless the
// answer had already started.
func Recover(base *slog.Logger) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			defer func() {
				v := recover()
				if v == nil {
					return
				}
				if v == http.ErrAbortHandler {
					panic(v) // the server's own way to abort a response
				}
				observability.Logger(r.Context(), base).Error("panic in handler", "panic", v)
				problem.Write(w, r, problem.New(http.StatusInternalServerError, "internal error"))
			}()
			next.ServeHTTP(w, r)
		})
	}
}

// Instrument counts requests and their durations by route pattern, method
// and status class, and the requests in flight.
func Instrument(m *observability.Metrics) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			start := time.Now()
			done := m.HTTPStart()
			defer done()
			sw := &statusWriter{ResponseWriter: w}
			defer func() {
				status := sw.status
				if status == 0 {
					status = http.StatusOK
				}
				route := chi.RouteContext(r.Context()).RoutePattern()
				observability.NameRequest(r.Context(), r.Method, route)
				m.HTTPDone(route, r.Method, status, time.Since(start), observability.SampledTraceID(r.Context()))
			}()
			next.ServeHTTP(sw, r)
		})
	}
}
