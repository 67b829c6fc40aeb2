package processor

import (
	"fmt"
	"strings"
	"testing"
)

// TestCacheBoundedByBytes: long processors fill the cache by their size,
// not their count, and it starts over before it passes maxCachedBytes.
func TestCacheBoundedByBytes(t *testing.T) {
	c := NewCache()
	long := `data.x == "` + strings.Repeat("a", 2000) + `"`
	perEntry := programBytes("", long)
	fits := maxCachedBytes / perEntry
	for i := range fits + 10 {
		if _, err := c.Get(fmt.Sprint("s", i), "", long); err != nil {
			t.Fatal(err)
		}
		if c.bytes > maxCachedBytes || c.bytes != perEntry*len(c.entries) {
			t.Fatalf("after %d entries: %d bytes accounted for %d entries, bound %d", i+1, c.bytes, len(c.entries), maxCachedBytes)
		}
	}
	if len(c.entries) > 10 {
		t.Fatalf("%d entries after %d inserts of which %d fit: the cache never started over", len(c.entries), fits+10, fits)
	}
	// The same stream with another definition replaces its own entry.
	c.Get("s0", "", "data")
	c.Get("s0", "", long)
	if c.bytes != perEntry*len(c.entries) {
		t.Fatalf("replacing an entry: %d bytes for %d entries", c.bytes, len(c.entries))
	}
}
