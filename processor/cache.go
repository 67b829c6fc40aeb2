package processor

import "sync"

// maxCached bounds the cache: beyond it the cache starts over rather than
// grow with every stream ever seen (deleted streams are never told to it).
const maxCached = 100_000

// Cache holds the compiled program of each stream, so that the router
// compiles a definition once per instance rather than once per event. An entry
// is keyed by stream id and remembers its definition: a stream deleted and
// created again with another definition is compiled again.
type Cache struct {
	mu      sync.RWMutex
	entries map[string]cached
}

type cached struct {
	filter, mapping string
	prog            *Program
	err             error
}

// NewCache returns an empty cache.
func NewCache() *Cache { return &Cache{entries: make(map[string]cached)} }

// Get returns the program of stream id for this definition, compiling it on
// first use. A definition that does not compile keeps its error cached too.
func (c *Cache) Get(id, filter, mapping string) (*Program, error) {
	c.mu.RLock()
	e, ok := c.entries[id]
	c.mu.RUnlock()
	if ok && e.filter == filter && e.mapping == mapping {
		return e.prog, e.err
	}
	prog, err := Compile(filter, mapping)
	c.mu.Lock()
	if len(c.entries) >= maxCached {
		clear(c.entries)
	}
	c.entries[id] = cached{filter: filter, mapping: mapping, prog: prog, err: err}
	c.mu.Unlock()
	return prog, err
}
