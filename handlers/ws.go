package handlers

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/rtstream/rtstream"
	"github.com/rtstream/rtstream/middleware"
	"github.com/rtstream/rtstream/observability"
	"github.com/rtstream/rtstream/problem"
	"github.com/rtstream/rtstream/quota"
)

// Close codes and reasons the server ends a WebSocket with (RFC 6455 7.4).
// Reasons are fixed strings: a close frame carries at most 123 bytes of them.
const (
	closeDeleted     = "stream deleted"
	closeTooSlow     = "too slow: reconnect with last_event_id"
	closeUnavailable = "results unavailable: reconnect later"
	closeGoingAway   = "server going away: reconnect with last_event_id"
	closeRevoked     = "credential revoked"
	closeTooBig      = "frame over MAX_BODY_BYTES"
)

// endFrame tells the client the stream was deleted, like SSE's "event: end";
// a normal close follows it.
var endFrame = []byte(`{"end":{"reason":"stream deleted"}}`)

// websocket serves a stream's results over a WebSocket and accepts events on
// it: every result is one text frame (the SSE data object plus its cursor),
// every text frame from the client is an event or {"events": [...]}, answered
// by one ack or error frame, in the order the frames came. It subscribes and
// checks everything it can before the upgrade, so that refusals are ordinary
// problem+json answers.
func (s *server) websocket(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r)
	if !ok {
		return
	}
	if !s.upgradable(w, r) {
		return
	}
	rq, perr := readStreamStart(r)
	if perr != nil {
		s.badParam(w, r, perr)
		return
	}
	// Subscribed before the upgrade: every result made after the client saw
	// the 101 reaches it.
	feed, closeFeed, ok := s.openFeed(w, r, id, rq.streamFrom(), true)
	if !ok {
		return
	}
	defer closeFeed()
	// The origin was checked above, against the same allowlist as CORS and
	// with a problem+json answer; the library's own check knows neither.
	conn, err := websocket.Accept(w, r, &websocket.AcceptOptions{InsecureSkipVerify: true})
	if err != nil {
		return // Accept answered the client
	}
	conn.SetReadLimit(s.cfg.MaxBodyBytes)
	// net/http's Shutdown does not wait for a hijacked connection: Close
	// does, so that the 1001 and the sends under way finish first.
	leave, ok := s.enter()
	if !ok {
		_ = conn.Close(websocket.StatusGoingAway, closeGoingAway)
		return
	}
	defer leave()
	defer s.Metrics.Subscribed("websocket")()

	// Two contexts, because cancelling one that a read or write of the
	// library uses drops the TCP connection at once, without a close frame:
	// life bounds the socket's I/O and ends only after the close handshake;
	// ctx stops the session's loops and the sends in flight.
	life, endLife := context.WithCancel(r.Context())
	defer endLife()
	ctx, cancel := context.WithCancel(life)
	ws := &wsSession{
		s:         s,
		conn:      conn,
		id:        id,
		path:      r.URL.Path,
		log:       observability.Logger(r.Context(), s.log),
		replies:   make(chan []byte, 1),
		principal: principal(r),
		cancel:    cancel,
	}
	// A reload that removes the key this socket rides on closes it with
	// 1008, not a dropped connection.
	held, release := middleware.Hold(r.Context(), r.Context())
	defer release()
	defer context.AfterFunc(held, func() {
		if errors.Is(context.Cause(held), middleware.ErrRevoked) {
			ws.stop(websocket.StatusPolicyViolation, closeRevoked, "")
		}
	})()
	// The server closing: 1001, and the client reconnects elsewhere.
	defer context.AfterFunc(s.life, func() {
		ws.stop(websocket.StatusGoingAway, closeGoingAway, "server closing")
	})()
	ws.run(ctx, life, endLife, feed)
}

// upgradable answers a request that cannot become this route's WebSocket: no
// Upgrade header (426), or an Origin that may not open one (403).
func (s *server) upgradable(w http.ResponseWriter, r *http.Request) bool {
	if !headerHasToken(r.Header, "Upgrade", "websocket") {
		w.Header().Set("Upgrade", "websocket")
		w.Header().Set("Connection", "Upgrade")
		problem.Write(w, r, problem.New(http.StatusUpgradeRequired,
			"this route speaks WebSocket: open it with a WebSocket client; results over HTTP are at /v1/streams/{id}/results"))
		return false
	}
	if !originAllowed(r, s.Origins) {
		problem.Write(w, r, problem.New(http.StatusForbidden,
			"this Origin may not open WebSockets here: only the server's own origin and CORS_ORIGINS may"))
		return false
	}
	return true
}

// run runs the session until it stops, then closes the socket: the
// handler's goroutine writes, and owns the reader and the pinger, which
// never outlive the request.
func (ws *wsSession) run(ctx, life context.Context, endLife context.CancelFunc, feed rtstream.Feed) {
	conn, id := ws.conn, ws.id
	opened := time.Now()
	ws.log.Info("websocket open", "stream_id", id)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		ws.readLoop(ctx, life)
	}()
	go func() {
		defer wg.Done()
		ws.pingLoop(ctx, life)
	}()
	ws.writeLoop(ctx, life, feed)
	ws.stop(websocket.StatusGoingAway, closeGoingAway, "") // no-op unless nothing said why

	code, reason, why := ws.ending()
	if code == 0 {
		_ = conn.CloseNow()
	} else {
		_ = conn.Close(code, reason)
	}
	endLife()
	wg.Wait()
	ws.log.Info("websocket closed", "stream_id", id, "duration", time.Since(opened),
		"delivered", ws.delivered, "accepted", ws.accepted.Load(), "close_code", int(code), "reason", why)
}

// wsSession is one open WebSocket: the handler's goroutine writes, one
// goroutine reads and sends, one pings.
type wsSession struct {
	s       *server
	conn    *websocket.Conn
	id      string
	path    string // the problem's instance
	log     *slog.Logger
	replies chan []byte // ack and error frames, reader to writer, in order
	// principal opened the socket; its frames are sends on its behalf.
	principal middleware.Principal

	// readTurns counts the reader's turns between reading the socket (even)
	// and handling a frame (odd). A pong is only seen while the reader
	// reads, so a ping that went unanswered while it was busy sending
	// proves nothing about the peer.
	readTurns atomic.Uint64

	delivered int          // results written; writer only
	accepted  atomic.Int64 // events acknowledged to the client

	cancel context.CancelFunc
	mu     sync.Mutex
	// Set by the first stop: how to close, and why.
	stopped bool
	code    websocket.StatusCode // 0: the socket is gone, close without a handshake
	reason  string               // sent in the close frame
	why     string               // logged
}

// stop ends the session; the first caller says how. why, when empty, is
// the reason.
func (ws *wsSession) stop(code websocket.StatusCode, reason, why string) {
	ws.mu.Lock()
	if !ws.stopped {
		if why == "" {
			why = reason
		}
		ws.stopped, ws.code, ws.reason, ws.why = true, code, reason, why
	}
	ws.mu.Unlock()
	ws.cancel()
}

// ending is how the first stop said to close.
func (ws *wsSession) ending() (websocket.StatusCode, string, string) {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	return ws.code, ws.reason, ws.why
}

// writeLoop writes results, answers and the end frame until the session
// stops; it is the only writer of data frames.
func (ws *wsSession) writeLoop(ctx, life context.Context, feed rtstream.Feed) {
	var frame []byte
	var traced []rtstream.DeliveryTrace
	deliver := func(ds []rtstream.Delivery) bool {
		now := time.Now()
		for i := range ds {
			frame = appendDelivery(frame[:0], &ds[i])
			if !ws.write(life, frame) {
				return false
			}
			ws.s.Metrics.Delivered(now, ds[i].Result.ReceivedAt, traceID(&ds[i]))
			ws.delivered++
		}
		traced = markWritten(addTraces(traced, ds), "ws", now)
		return true
	}
	for {
		select {
		case <-ctx.Done():
			return
		case msg := <-ws.replies:
			if !ws.write(life, msg) {
				return
			}
		case ds := <-feed.C():
			release, ok := ws.s.replaySlot(ctx, feed)
			if !ok {
				return
			}
			ok = deliver(ds) // writes within deadlines, returns; never panics
			release()
			if !ok {
				return
			}
		case <-feed.Done():
			switch err := feed.Err(); {
			case errors.Is(err, rtstream.ErrNotFound):
				// Results made before the delete still reach the client.
				for pending := true; pending; {
					select {
					case ds := <-feed.C():
						if !deliver(ds) {
							return
						}
					default:
						pending = false
					}
				}
				if ws.write(life, endFrame) {
					ws.stop(websocket.StatusNormalClosure, closeDeleted, "")
				}
			case errors.Is(err, rtstream.ErrTooSlow):
				// The feed's buffer filled: the client resumes from its
				// last cursor. The feed counted the slow disconnect.
				ws.stop(websocket.StatusTryAgainLater, closeTooSlow, err.Error())
			case errors.Is(err, rtstream.ErrUnavailable):
				ws.stop(websocket.StatusTryAgainLater, closeUnavailable, err.Error())
			default: // the server shuts down
				why := "feed ended"
				if err != nil {
					why = err.Error()
				}
				ws.stop(websocket.StatusGoingAway, closeGoingAway, why)
			}
			return
		}
	}
}

// write sends one text frame within the write timeout. A client that does
// not take it in time is cut (the library drops the connection when the
// write's context ends) and counted as a slow disconnect.
func (ws *wsSession) write(life context.Context, msg []byte) bool {
	wctx, cancel := context.WithTimeout(life, ws.s.cfg.WriteTimeout)
	err := ws.conn.Write(wctx, websocket.MessageText, msg)
	cancel()
	switch {
	case err == nil:
		return true
	case errors.Is(err, context.DeadlineExceeded):
		ws.s.Metrics.SlowDisconnect()
		ws.stop(0, "", "write timeout: client not reading")
	default:
		ws.stop(0, "", "write failed: "+err.Error())
	}
	return false
}

// readLoop reads the client's frames and answers each, one at a time: a
// send finishes before the next frame is read, which keeps the stream's
// events in the order the client sent them and lets TCP hold back a client
// that sends faster than Kafka acknowledges.
func (ws *wsSession) readLoop(ctx, life context.Context) {
	for {
		typ, data, err := ws.conn.Read(life)
		ws.readTurns.Add(1)
		if err != nil {
			ws.readFailed(err)
			return
		}
		reply := ws.handle(ctx, typ, data)
		select {
		case ws.replies <- reply:
		case <-ctx.Done():
			return
		}
		ws.readTurns.Add(1)
	}
}

// readFailed ends the session after a failed read, saying why.
func (ws *wsSession) readFailed(err error) {
	switch code := websocket.CloseStatus(err); {
	case code != -1:
		// The library answered the client's close frame already.
		ws.stop(0, "", fmt.Sprintf("client closed (%d)", code))
	case errors.Is(err, websocket.ErrMessageTooBig):
		// The library sent the close frame (1009) as it hit the limit; a
		// frame's tail cannot be skipped, so the protocol allows nothing
		// else.
		ws.stop(websocket.StatusMessageTooBig, closeTooBig,
			fmt.Sprintf("frame over MAX_BODY_BYTES (%d bytes)", ws.s.cfg.MaxBodyBytes))
	default:
		ws.stop(0, "", "read failed: "+err.Error())
	}
}

// handle sends the events of one frame and returns the answer frame.
func (ws *wsSession) handle(ctx context.Context, typ websocket.MessageType, data []byte) []byte {
	events, p := decodeFrame(typ, data, ws.s.cfg.MaxBatch)
	if p != nil {
		return ws.errorFrame(*p)
	}
	sctx, cancel := context.WithTimeout(ctx, ws.s.cfg.SendTimeout)
	defer cancel()
	if !ws.principal.Has(middleware.ScopeEventsWrite) {
		return ws.errorFrame(scopeProblem(middleware.ScopeEventsWrite))
	}
	// Like POST events: a deleted stream takes no more events, a source
	// stream none at all.
	st, err := ws.s.visible(sctx, ws.principal, ws.id)
	if err == nil {
		err = takesSends(st)
	}
	if err != nil {
		return ws.errorFrame(ws.problemFor(err))
	}
	// The stream's schema, all or nothing, like POST events.
	if pr, err := ws.s.schemaProblem(sctx, st, events); err != nil || pr != nil {
		if pr == nil {
			return ws.errorFrame(ws.problemFor(err))
		}
		return ws.errorFrame(*pr)
	}
	size := eventBytes(events)
	if q := ws.s.Quotas; q != nil {
		var e *quota.Exceeded
		if err := q.TakeBytes(sctx, ws.s.subjectOf(ws.principal), size); errors.As(err, &e) {
			ws.s.Metrics.QuotaRefused(ws.s.subjectOf(ws.principal), e.Quota)
			return ws.errorFrame(exceeded(e))
		}
	}
	ids, err := ws.s.Events.Send(sctx, ws.id, events)
	if err != nil {
		return ws.errorFrame(ws.problemFor(err))
	}
	if q := ws.s.Quotas; q != nil {
		q.Sent(context.WithoutCancel(sctx), ws.s.subjectOf(ws.principal), size)
	}
	ws.s.Metrics.EventsAccepted(len(ids))
	ws.accepted.Add(int64(len(ids)))
	frame, _ := json.Marshal(wsAck{Ack: len(ids), EventIDs: ids})
	return frame
}

// pingLoop pings the client every heartbeat and ends the session when a
// ping goes unanswered for the write timeout while the reader was reading.
func (ws *wsSession) pingLoop(ctx, life context.Context) {
	t := time.NewTicker(ws.s.cfg.Heartbeat)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		turns := ws.readTurns.Load()
		// life, not ctx: cancelling a ping's context mid-write would drop
		// the connection before the close handshake. Once the handler
		// closed the socket the ping returns at once.
		pctx, cancel := context.WithTimeout(life, ws.s.cfg.WriteTimeout)
		err := ws.conn.Ping(pctx)
		cancel()
		if err == nil || ctx.Err() != nil {
			continue
		}
		if now := ws.readTurns.Load(); errors.Is(err, context.DeadlineExceeded) && (now != turns || now%2 == 1) {
			continue // the reader was busy: the pong may be waiting unread
		}
		ws.stop(0, "", "keepalive: "+err.Error())
		return
	}
}

// wsAck answers a frame whose events Kafka acknowledged.
type wsAck struct {
	Ack      int      `json:"ack"`
	EventIDs []string `json:"event_ids"`
}

// wsProblem is the body of an error frame: the problem an HTTP answer would
// carry, with Retry-After, which a frame has no header for, as a field.
type wsProblem struct {
	problem.Problem
	// RetryAfter is how many seconds to wait before resending (429, 503).
	RetryAfter int `json:"retry_after,omitempty"`
}

// errorFrame encodes p as {"error": {...}}.
func (ws *wsSession) errorFrame(p problem.Problem) []byte {
	if p.Type == "" {
		p.Type = "about:blank"
	}
	if p.Title == "" {
		p.Title = http.StatusText(p.Status)
	}
	p.Instance = ws.path
	e := wsProblem{Problem: p, RetryAfter: p.RetryAfter}
	if (p.Status == http.StatusTooManyRequests || p.Status == http.StatusServiceUnavailable) && e.RetryAfter <= 0 {
		e.RetryAfter = 1
	}
	frame, _ := json.Marshal(struct {
		Error wsProblem `json:"error"`
	}{e})
	return frame
}

// problemFor maps a send's error to the problem POST events would answer
// with (see fail); errors the contract does not name are logged and told
// apart from nothing.
func (ws *wsSession) problemFor(err error) problem.Problem {
	switch {
	case errors.Is(err, rtstream.ErrNotFound):
		return problem.New(http.StatusNotFound, err.Error())
	case errors.Is(err, rtstream.ErrInvalid):
		return problem.New(http.StatusBadRequest, err.Error())
	case errors.Is(err, rtstream.ErrTooLarge):
		return problem.New(http.StatusRequestEntityTooLarge, err.Error())
	case errors.Is(err, rtstream.ErrConflict):
		return problem.New(http.StatusConflict, err.Error())
	case errors.Is(err, rtstream.ErrUnavailable), errors.Is(err, context.DeadlineExceeded):
		ws.log.Warn("kafka unavailable", "err", err)
		return problem.Problem{Status: http.StatusServiceUnavailable, RetryAfter: 1,
			Detail: "Kafka did not acknowledge the frame in time; nothing of it was accepted, retry later"}
	default:
		ws.log.Error("internal error", "err", err)
		return problem.New(http.StatusInternalServerError, "internal error")
	}
}

// decodeFrame reads a client frame: one event (any JSON value), or an
// object whose only member is "events" holding an array, a batch. Like a
// POST body, every event is checked and compacted to one line. An event that
// itself looks like {"events": [...]} is sent inside a batch.
func decodeFrame(typ websocket.MessageType, data []byte, maxBatch int) ([]json.RawMessage, *problem.Problem) {
	bad := func(status int, detail string, errs ...problem.FieldError) *problem.Problem {
		p := problem.New(status, detail)
		p.Errors = errs
		return &p
	}
	if typ != websocket.MessageText {
		return nil, bad(http.StatusUnsupportedMediaType,
			`binary frames are not read: send an event, or {"events": [...]}, as JSON in a text frame`)
	}
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) == 0 {
		return nil, bad(http.StatusBadRequest, `empty frame: send an event, or {"events": [...]}`)
	}
	if !json.Valid(trimmed) {
		var v json.RawMessage
		err := json.Unmarshal(trimmed, &v)
		return nil, bad(http.StatusBadRequest, "invalid JSON: "+jsonErrorDetail(trimmed, err))
	}
	// A text frame must be UTF-8 (RFC 6455), and JSON between systems too;
	// the WebSocket library does not check.
	if off := firstInvalidUTF8(trimmed); off >= 0 {
		var de *decodeError
		errors.As(utf8Error(trimmed, off, "", ""), &de)
		return nil, bad(http.StatusBadRequest, de.detail, de.fields...)
	}
	raw, ok := batchOf(trimmed)
	if !ok {
		return []json.RawMessage{oneLine(trimmed)}, nil
	}
	var events []json.RawMessage
	if err := json.Unmarshal(raw, &events); err != nil {
		return nil, bad(http.StatusBadRequest, "invalid events: "+err.Error()) // unreachable: raw is a valid array
	}
	if len(events) == 0 {
		return nil, bad(http.StatusBadRequest, `the frame has no event: "events" is empty`,
			problem.FieldError{Pointer: "/events", Detail: "empty"})
	}
	if len(events) > maxBatch {
		return nil, bad(http.StatusRequestEntityTooLarge,
			fmt.Sprintf("%d events in one frame, over the limit of %d", len(events), maxBatch),
			problem.FieldError{Pointer: "/events", Detail: "too many events"})
	}
	for i := range events {
		events[i] = oneLine(events[i])
	}
	return events, nil
}

// batchOf returns the array of a frame that is exactly {"events": [...]}.
// It reads tokens, so a large single event costs one token, not a decode.
func batchOf(frame []byte) (json.RawMessage, bool) {
	if frame[0] != '{' {
		return nil, false
	}
	dec := json.NewDecoder(bytes.NewReader(frame))
	if _, err := dec.Token(); err != nil { // the '{'
		return nil, false
	}
	if key, err := dec.Token(); err != nil || key != "events" {
		return nil, false
	}
	var v json.RawMessage
	if err := dec.Decode(&v); err != nil || len(v) == 0 || v[0] != '[' {
		return nil, false
	}
	if end, err := dec.Token(); err != nil || end != json.Delim('}') {
		return nil, false
	}
	return v, true
}

// originAllowed applies the CORS allowlist to a WebSocket handshake, which
// browsers do not subject to CORS (any page may open a socket anywhere): a
// request without Origin (not a browser), from the server's own host, or
// from an allowed origin ("*" allows any) may open one. So CORS_ORIGINS
// names the web apps that may use the API from a browser on every route.
func originAllowed(r *http.Request, allowed []string) bool {
	origin := r.Header.Get("Origin")
	if origin == "" || slices.Contains(allowed, "*") || slices.Contains(allowed, origin) {
		return true
	}
	u, err := url.Parse(origin)
	return err == nil && u.Host != "" && strings.EqualFold(u.Host, r.Host)
}

// headerHasToken reports whether a comma-separated header lists token.
func headerHasToken(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for _, t := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}
