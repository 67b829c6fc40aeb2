// Package rtstream holds the domain of the rtstream service: streams, the events
// sent to them and the results the pipeline makes from them, and the errors every
// layer agrees on. It imports no other package of this module, so that the HTTP
// layer and the Kafka layer can share these types without knowing each other.
package rtstream

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Errors shared by the layers. The HTTP layer maps them to statuses with errors.Is.
var (
	// ErrNotFound is returned when a stream does not exist or was deleted.
	ErrNotFound = errors.New("not found")
	// ErrConflict is returned when a stream exists with another definition.
	ErrConflict = errors.New("conflict")
	// ErrUnavailable is returned when Kafka did not acknowledge a write in time;
	// the caller may retry. With ErrUnconfirmed the write may still land.
	ErrUnavailable = errors.New("unavailable")
	// ErrInvalid is returned for input that can never succeed.
	ErrInvalid = errors.New("invalid")
	// ErrTooLarge is returned for a request over a size limit.
	ErrTooLarge = errors.New("too large")
	// ErrTooSlow ends a subscription that did not keep up with its stream.
	ErrTooSlow = errors.New("subscriber too slow")
	// ErrUnconfirmed comes with ErrUnavailable when a write was handed to
	// Kafka but not acknowledged in time: it may still be stored (Kafka
	// acknowledges it later), so the caller must not claim it was not.
	ErrUnconfirmed = errors.New("unconfirmed")
)

var streamIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// ValidStreamID reports whether id matches the contract's stream id pattern.
func ValidStreamID(id string) bool { return streamIDPattern.MatchString(id) }

// Processor is a stream's optional processing definition. Expressions are
// evaluated by the router; the core pipeline only carries them.
type Processor struct {
	Filter string `json:"filter,omitempty"`
	Map    string `json:"map,omitempty"`
}

// DefaultTenant owns the streams of the single-tenant setup (API_KEYS), and
// every stream created before tenants existed.
const DefaultTenant = "default"

// Stream is a named, durable sequence of events and results.
type Stream struct {
	ID        string     `json:"id"`
	Name      string     `json:"name,omitempty"`
	CreatedAt time.Time  `json:"created_at"`
	Processor *Processor `json:"processor,omitempty"`
	// Tenant owns the stream: only its principals (and admins) see it.
	// Empty is DefaultTenant (a record written before tenants).
	Tenant string `json:"tenant,omitempty"`
	// Schema, when set, is the JSON Schema (2020-12) every event sent must
	// satisfy, as the client gave it (compacted).
	Schema json.RawMessage `json:"schema,omitempty"`
	// Source, when set, makes the stream read-only: it follows an existing
	// Kafka topic instead of taking sends.
	Source *Source `json:"source,omitempty"`
}

// Source is an existing Kafka topic a read-only stream follows.
type Source struct {
	Topic string `json:"topic"`
	// Format of the records' values: SourceJSON, SourceText or SourceBytes.
	Format string `json:"format"`
	// Key, when set, keeps only the records with this key, so that several
	// streams can share a topic.
	Key string `json:"key,omitempty"`
	// From is where a new stream starts following: SourceEarliest or
	// SourceLatest.
	From string `json:"from"`
}

// The values of Source.Format and Source.From.
const (
	SourceJSON     = "json"
	SourceText     = "text"
	SourceBytes    = "bytes" // the value, base64
	SourceEarliest = "earliest"
	SourceLatest   = "latest"
)

// Owner is the stream's tenant, DefaultTenant for a record without one.
func (s Stream) Owner() string {
	if s.Tenant == "" {
		return DefaultTenant
	}
	return s.Tenant
}

// SameDefinition reports whether two streams were created from the same request
// body, which is what makes PUT idempotent.
func (s Stream) SameDefinition(o Stream) bool {
	if s.Name != o.Name || s.Owner() != o.Owner() || !bytes.Equal(s.Schema, o.Schema) {
		return false
	}
	if (s.Source == nil) != (o.Source == nil) || (s.Source != nil && *s.Source != *o.Source) {
		return false
	}
	switch {
	case s.Processor == nil && o.Processor == nil:
		return true
	case s.Processor == nil || o.Processor == nil:
		return false
	default:
		return *s.Processor == *o.Processor
	}
}

// Event is one input event as it travels through Kafka.
type Event struct {
	ID         string          `json:"event_id"`
	ReceivedAt time.Time       `json:"received_at"`
	Data       json.RawMessage `json:"data"`
}

// Result is what a subscriber receives for one processed event.
type Result struct {
	StreamID    string          `json:"stream_id"`
	EventID     string          `json:"event_id"`
	ReceivedAt  time.Time       `json:"received_at"`
	ProcessedAt time.Time       `json:"processed_at"`
	Data        json.RawMessage `json:"data"`
}

// DeadLetter is an event the pipeline could not process, as the dead-letters
// route shows it: its data as sent and why it failed.
type DeadLetter struct {
	EventID  string          `json:"event_id"`
	Reason   string          `json:"reason"`
	FailedAt time.Time       `json:"failed_at"`
	Data     json.RawMessage `json:"data"`
}

// From is where a subscription to a stream's results starts. The zero From
// is "live": results made from now on.
type From struct {
	// Earliest replays the stream from its first result.
	Earliest bool
	// After, when not nil, replays every result after this cursor first.
	After *Cursor
}

// Feed is one subscriber's results of a stream: first the replay asked for
// (if any), then the live results, with no gap and no duplicate between them.
type Feed interface {
	// C delivers the results of one record at a time, in order; the slices
	// are shared and must not be changed. Call C for every receive (as in
	// a select in a loop): a feed may hand out a burst through it a few
	// records at a time, so that an idle subscriber holds little.
	C() <-chan []Delivery
	// CaughtUp is closed once the replay was handed to C and C carries live
	// results: a poll that found nothing pending may wait from then on.
	CaughtUp() <-chan struct{}
	// Done is closed when the feed ended; Err then says why: an error
	// wrapping ErrNotFound when the stream was deleted.
	Done() <-chan struct{}
	Err() error
	Close()
}

// Delivery is a result as a subscriber receives it, with its cursor.
type Delivery struct {
	Cursor Cursor
	Result Result
	// Trace, when the result's send was traced and sampled, joins the
	// socket write to that trace; nil otherwise.
	Trace DeliveryTrace
}

// DeliveryTrace is the trace a live result carries to the transports that
// write it, so that one trace runs from the HTTP send to the socket write.
type DeliveryTrace interface {
	// TraceID is the hex trace id, for exemplars.
	TraceID() string
	// Written records a write of the result's record to one subscriber
	// over transport, begun at start.
	Written(transport string, start time.Time)
}

// Cursor is a result's place in the results topic: the record's partition and
// offset, and the result's index within the record. Clients see it as an
// opaque string and hand it back to resume.
type Cursor struct {
	Partition int32
	Offset    int64
	Index     int
}

// String is the wire form, "partition-offset-index".
func (c Cursor) String() string {
	return strconv.FormatInt(int64(c.Partition), 10) + "-" + strconv.FormatInt(c.Offset, 10) + "-" + strconv.Itoa(c.Index)
}

// ParseCursor reads the wire form of a cursor.
func ParseCursor(s string) (Cursor, error) {
	parts := strings.Split(s, "-")
	if len(parts) != 3 {
		return Cursor{}, fmt.Errorf("cursor %q: %w", s, ErrInvalid)
	}
	p, err1 := strconv.ParseInt(parts[0], 10, 32)
	o, err2 := strconv.ParseInt(parts[1], 10, 64)
	i, err3 := strconv.Atoi(parts[2])
	if err1 != nil || err2 != nil || err3 != nil || p < 0 || o < 0 || i < 0 {
		return Cursor{}, fmt.Errorf("cursor %q: %w", s, ErrInvalid)
	}
	return Cursor{Partition: int32(p), Offset: o, Index: i}, nil
}
