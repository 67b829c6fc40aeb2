package quota

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestLimitsOverrides(t *testing.T) {
	q := New(Config{Defaults: Limits{Streams: 3, HeldConnections: 2, IngestBytesPerSecond: 100},
		Tenants: map[string]Limits{"acme": {Streams: 10}}})
	for _, tt := range []struct {
		tenant string
		want   Limits
	}{
		{"acme", Limits{Streams: 10, HeldConnections: 2, IngestBytesPerSecond: 100}},
		{"globex", Limits{Streams: 3, HeldConnections: 2, IngestBytesPerSecond: 100}},
	} {
		if got := q.Limits(tt.tenant); got != tt.want {
			t.Errorf("Limits(%s) = %+v, want %+v", tt.tenant, got, tt.want)
		}
	}
	q.SetTenants(map[string]Limits{"globex": {HeldConnections: 7}})
	if got := q.Limits("acme").Streams; got != 3 {
		t.Errorf("after a reload without acme: streams %d, want the default 3", got)
	}
	if got := q.Limits("globex").HeldConnections; got != 7 {
		t.Errorf("after a reload: globex held %d, want 7", got)
	}
}

// TestQuotas: each quota refuses past its limit with an *Exceeded naming
// it, and frees what it counted; Usage shows the use.
func TestQuotas(t *testing.T) {
	ctx := context.Background()
	q := New(Config{Defaults: Limits{Streams: 2, HeldConnections: 1, IngestBytesPerSecond: 1000}})
	var e *Exceeded
	if err := q.CheckStreams("acme", 1); err != nil {
		t.Errorf("1 of 2 streams: %v", err)
	}
	if err := q.CheckStreams("acme", 2); !errors.As(err, &e) || e.Quota != Streams || e.Limit != 2 || e.Use != 2 || !errors.Is(err, ErrExceeded) {
		t.Errorf("2 of 2 streams: %v, want streams exceeded, limit 2, use 2", err)
	}
	release, err := q.Acquire(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := q.Acquire(ctx, "acme"); !errors.As(err, &e) || e.Quota != HeldConnections {
		t.Errorf("a second held connection: %v, want held_connections exceeded", err)
	}
	if r, err := q.Acquire(ctx, "globex"); err != nil {
		t.Errorf("another tenant's connection: %v", err)
	} else {
		r()
	}
	release()
	if r, err := q.Acquire(ctx, "acme"); err != nil {
		t.Errorf("after the release: %v", err)
	} else {
		r()
	}
	if err := q.TakeBytes(ctx, "acme", 800); err != nil {
		t.Errorf("800 of 1000 bytes: %v", err)
	}
	if err := q.TakeBytes(ctx, "acme", 800); !errors.As(err, &e) || e.Quota != IngestBytes || e.RetryAfter <= 0 {
		t.Errorf("800 more bytes: %v, want the byte rate exceeded with a wait", err)
	}
	q.Sent(ctx, "acme", 800)
	q.Sent(ctx, "acme", 200)
	u, err := q.Usage(ctx, "acme", 1)
	if err != nil {
		t.Fatal(err)
	}
	if u.Quotas[Streams] != (QuotaUsage{Used: 1, Limit: 2}) || u.Quotas[HeldConnections].Limit != 1 ||
		u.Sent["minute"].Requests != 2 || u.Sent["day"].Bytes != 1000 {
		t.Errorf("usage %+v", u)
	}
}

// countingStore counts the takes that reach the store.
type countingStore struct {
	store
	takes int
}

func (c *countingStore) take(ctx context.Context, tenant string, n, rate int64) (bool, time.Duration, error) {
	c.takes++
	return c.store.take(ctx, tenant, n, rate)
}

// TestBytesReserve: small sends spend the instance's reserve, so most need
// no store round trip, and together they still never pass the rate.
func TestBytesReserve(t *testing.T) {
	q := New(Config{Defaults: Limits{IngestBytesPerSecond: 100_000}})
	cs := &countingStore{store: q.store}
	q.store = cs
	accepted, takesWhileAccepted := int64(0), 0
	for range 300 { // 300 sends of 1,000 bytes at once: the bucket holds 100,000
		if q.TakeBytes(context.Background(), "acme", 1000) == nil {
			accepted += 1000
			takesWhileAccepted = cs.takes
		}
	}
	if accepted > 100_000 || accepted < 90_000 {
		t.Errorf("accepted %d bytes at once, want the burst of 100,000 at most (and nearly all of it)", accepted)
	}
	if takesWhileAccepted > 15 {
		t.Errorf("%d takes reached the store for %d accepted sends; the reserve should spare most", takesWhileAccepted, accepted/1000)
	}
}
