//go:build !race

package schema

// raceSlowdown scales the tests' time limits (see race_on_test.go).
const raceSlowdown = 1
