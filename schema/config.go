// Package schema checks the events sent to a stream against the stream's
// JSON Schema (2020-12) before anything reaches Kafka, within limits and a
// budget: a schema is user input run on every event in the request path, so
// no schema and event together may take unbounded time or memory
// (docs/decisions/0032-schemas-at-the-door.md).
//
// It compiles schemas with santhosh-tekuri/jsonschema, which loads nothing:
// remote and file references are refused. Every subschema of a compiled
// schema charges a per-event budget before it does its work, and an event
// that exhausts it is refused like an invalid one.
package schema

// Defaults of Config.
const (
	DefaultMaxBytes        = 32 << 10
	DefaultMaxDepth        = 32
	DefaultMaxSubschemas   = 2_000
	DefaultMaxInPlace      = 32
	DefaultMaxPatternInsts = 10_000
	DefaultMaxEventDepth   = 128
	DefaultEventSteps      = 1_000_000
	DefaultStepsPerByte    = 1024
	DefaultRequestSteps    = 128_000_000
	DefaultMaxErrors       = 100
	DefaultCacheBytes      = 64 << 20
)

// Config holds the limits on schemas and the validation budget. Zero fields
// take the defaults.
type Config struct {
	// MaxBytes of a schema as sent, at creation: half of what a stream
	// definition may hold (64 KiB), so that a schema over it is answered
	// naming this limit. Default 32 KiB.
	MaxBytes int
	// MaxDepth of a schema's JSON nesting, at creation. Default 32.
	MaxDepth int
	// MaxSubschemas bounds the JSON objects and booleans of a schema, each
	// a potential subschema: the library's compiler takes time quadratic in
	// their number (2,000 compile in about 45 ms, 8,000 in 350). Default
	// 2,000.
	MaxSubschemas int
	// MaxInPlace bounds the subschemas applied in a row to the same value
	// ($ref, allOf, anyOf, oneOf, not, if/then/else, dependentSchemas): the
	// validator walks that chain on each step, and the call stack grows
	// with it at every level of an event. Default 32.
	MaxInPlace int
	// MaxPatternInsts bounds the compiled instructions of all the patterns
	// of one schema together (pattern, patternProperties): Go compiles
	// a{1000}{1000} to a million of them, about 240 bytes each, and a
	// pattern matches in time proportional to its size. Default 10,000.
	MaxPatternInsts int
	// MaxEventDepth of an event checked against a schema: the validator
	// recurses once per level (times the in-place chain). Default 128.
	MaxEventDepth int
	// EventSteps plus StepsPerByte for each byte of the event is one
	// event's budget, in steps of at most about a nanosecond of validation
	// work (see cost.go; a value the schema looks at costs 1,000 to 2,000).
	// Defaults 1,000,000 and 1,024: a 1 KiB event may use 2 ms.
	EventSteps   int64
	StepsPerByte int64
	// RequestSteps bounds the events of one request together, so that one
	// request costs at most about 0.1 s of work, and allocates (garbage
	// included) at most about 70 MB. Default 128,000,000.
	RequestSteps int64
	// MaxErrors listed in one answer; the detail says how many events
	// failed in all. Default 100.
	MaxErrors int
	// CacheBytes bounds the compiled schemas a Cache keeps, estimated from
	// their size. Default 64 MiB.
	CacheBytes int
}

// setDefaults fills in the zero fields.
func (c *Config) setDefaults() {
	setDefault(&c.MaxBytes, DefaultMaxBytes)
	setDefault(&c.MaxDepth, DefaultMaxDepth)
	setDefault(&c.MaxSubschemas, DefaultMaxSubschemas)
	setDefault(&c.MaxInPlace, DefaultMaxInPlace)
	setDefault(&c.MaxPatternInsts, DefaultMaxPatternInsts)
	setDefault(&c.MaxEventDepth, DefaultMaxEventDepth)
	setDefault(&c.EventSteps, DefaultEventSteps)
	setDefault(&c.StepsPerByte, DefaultStepsPerByte)
	setDefault(&c.RequestSteps, DefaultRequestSteps)
	setDefault(&c.MaxErrors, DefaultMaxErrors)
	setDefault(&c.CacheBytes, DefaultCacheBytes)
}

func setDefault[T int | int64](v *T, def T) {
	if *v <= 0 {
		*v = def
	}
}
