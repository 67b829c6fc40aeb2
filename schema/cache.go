package schema

import (
	"bytes"
	"sync"
)

// Cache holds the compiled schema of each stream, so that a schema is
// compiled once per instance and definition rather than once per request.
// An entry is keyed by stream id and remembers the schema's bytes: a stream
// deleted and created again with another schema is compiled again. It is
// bounded by an estimate of what the compiled schemas hold; beyond it the
// cache starts over rather than grow with every stream ever seen (deleted
// streams are never told to it), and what it drops is compiled again on its
// next use.
type Cache struct {
	cfg     Config
	mu      sync.RWMutex
	entries map[string]cached
	bytes   int
}

type cached struct {
	raw []byte
	v   *Validator
	err error
}

// NewCache returns an empty cache whose schemas follow cfg (zero fields:
// the defaults).
func NewCache(cfg Config) *Cache {
	cfg.setDefaults()
	return &Cache{cfg: cfg, entries: make(map[string]cached)}
}

// Config is the cache's configuration, defaults filled in.
func (c *Cache) Config() Config { return c.cfg }

// compiledBytes estimates what a compiled schema of raw holds: the library
// kept 29 to 128 bytes per byte of schema in the shapes measured (many
// properties, deep nesting, many patterns), and the fast evaluator's
// tables add little. The clones validations use are pooled, which the
// collector empties.
func compiledBytes(raw []byte) int {
	return 16<<10 + 128*len(raw)
}

// Get returns the validator of stream id's schema raw, compiling it on first
// use; a schema that does not compile keeps its *CompileError cached too.
func (c *Cache) Get(id string, raw []byte) (*Validator, error) {
	c.mu.RLock()
	e, ok := c.entries[id]
	c.mu.RUnlock()
	if ok && bytes.Equal(e.raw, raw) {
		return e.v, e.err
	}
	t, err := compile(raw, c.cfg)
	e = cached{raw: bytes.Clone(raw), err: err}
	if err == nil {
		e.v = newValidator(t)
	}
	size := compiledBytes(raw)
	c.mu.Lock()
	if old, ok := c.entries[id]; ok {
		c.bytes -= compiledBytes(old.raw)
	}
	if c.bytes+size > c.cfg.CacheBytes {
		clear(c.entries)
		c.bytes = 0
	}
	c.entries[id] = e
	c.bytes += size
	c.mu.Unlock()
	return e.v, e.err
}
