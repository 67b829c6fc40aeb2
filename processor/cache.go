package processor

import "sync"

// maxCachedBytes bounds the memory the cache holds, estimated from the
// sources' length: a compiled program keeps about 80 bytes per byte of
// source (a 2.5 KiB expression, 204 KiB), so a count alone would let
// 100,000 long processors pin gigabytes. Beyond it the cache starts over
// rather than grow with every stream ever seen (deleted streams are never
// told to it); the programs it drops are compiled again on their next
// event.
const maxCachedBytes = 256 << 20

// programBytes estimates what a cached program for these sources keeps.
func programBytes(filter, mapping string) int {
	return 4<<10 + 128*(len(filter)+len(mapping))
}

// Cache holds the compiled program of each stream, so that the router
// compiles a definition once per instance rather than once per event. An entry
// is keyed by stream id and remembers its definition: a stream deleted and
// created again with another definition is compiled again.
type Cache struct {
	mu      sync.RWMutex
	entries map[string]cached
	bytes   int
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
	size := programBytes(filter, mapping)
	c.mu.Lock()
	if old, ok := c.entries[id]; ok {
		c.bytes -= programBytes(old.filter, old.mapping)
	}
	if c.bytes+size > maxCachedBytes {
		clear(c.entries)
		c.bytes = 0
	}
	c.entries[id] = cached{filter: filter, mapping: mapping, prog: prog, err: err}
	c.bytes += size
	c.mu.Unlock()
	return prog, err
}
