// Package record is the format of rtstream's Kafka records: the events record
// that one send request becomes, the results record the router makes from it,
// and their JSON codecs. Only the Kafka side (pubsub, router) and the fan-out
// that delivers results records read it; the API sees the domain types.
package record

import "github.com/rtstream/rtstream"

// EventBatch is the Kafka record for one send request: all its events travel in
// one record, so Kafka acknowledges the request as a whole or not at all.
type EventBatch struct {
	StreamID string           `json:"stream_id"`
	Events   []rtstream.Event `json:"events"`
	// Replaced counts the events whose data held bytes that are not UTF-8,
	// replaced by U+FFFD when the record was read (ToValidUTF8).
	Replaced int `json:"-"`
}

// ResultBatch is the Kafka record the router writes for one EventBatch. Source
// names the input record, so that a redelivered input (at-least-once) can be
// recognised downstream and its results delivered once.
type ResultBatch struct {
	StreamID string            `json:"stream_id"`
	Source   Position          `json:"source"`
	Results  []rtstream.Result `json:"results"`
	// Trace is the record's trace context, from its headers (not its value).
	Trace Trace `json:"-"`
	// Replaced counts the results whose data held bytes that are not
	// UTF-8, replaced by U+FFFD when the record was read (ToValidUTF8).
	Replaced int `json:"-"`
}

// Position is a record's place in a Kafka topic.
type Position struct {
	Partition int32 `json:"partition"`
	Offset    int64 `json:"offset"`
}

// The headers that carry a record's W3C trace context (traceparent and
// tracestate, as in HTTP), when the send that made it was traced.
const (
	HeaderTraceparent = "traceparent"
	HeaderTracestate  = "tracestate"
)

// Trace is the W3C trace context a record carries in its headers; zero when
// it carries none.
type Trace struct {
	Parent, State string
}

// The version marker every record rtstream writes carries, on every topic
// (docs/records.md): a header, not a field, so that no value changes and
// readers that predate it, or ignore headers, read on as before. A reader
// that meets a version it does not know must not guess at the record's
// meaning; a record without the header is version 1, written before the
// marker existed.
const (
	HeaderFormat  = "rtstream-format"
	FormatVersion = "1"
)
