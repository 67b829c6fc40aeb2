//go:build race

package schema

// raceSlowdown scales the tests' time limits: the race detector makes the
// library's allocations several times slower.
const raceSlowdown = 10
