package schema

import (
	"context"
	"testing"
)

// BenchmarkTenFieldEvent is one valid event against a ten-field schema: the
// fast evaluator's cost per event of the common case (the library alone
// took 16 µs).
//
//	go test -run '^$' -bench TenField ./schema
func BenchmarkTenFieldEvent(b *testing.B) {
	v := validator(b, tenField, Config{})
	ev := events(tenEvent)
	for b.Loop() {
		if err := v.Validate(context.Background(), ev); err != nil {
			b.Fatal(err)
		}
	}
}
