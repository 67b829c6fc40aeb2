package quota

import (
	"context"
	"math"
	"sync"
	"time"
)

// memStore keeps the counts of one process, for an instance without Redis.
// It does what redisStore does with the same arithmetic, so a deployment
// that adds Redis changes only who shares the counts, not what they mean.
type memStore struct {
	// leaseTTL is how long a lease counts without a renew; 0 (newMemStore)
	// is "until released": expiry is for leases whose instance died, and
	// in one process a lease cannot outlive its instance.
	leaseTTL time.Duration
	// now is the clock of the usage windows and the byte bucket; tests set
	// it to cross minute and hour boundaries without waiting.
	now func() time.Time

	mu     sync.Mutex
	leases map[string]map[string]time.Time // tenant → id → expiry (zero: none)
	tats   map[string]time.Time            // tenant → when its byte bucket is full again
	usage  map[string]*usage               // tenant → its usage buckets
	swept  time.Time                       // the last sweep of idle tenants
}

var _ store = (*memStore)(nil)

// sweepEvery bounds how often a call pays for walking every tenant, so that
// tenants that went away (a JWT subject seen once) do not stay forever.
const sweepEvery = time.Minute

func newMemStore() store { return newMemStoreLeases(0) }

// newMemStoreLeases is a memory store whose leases expire after leaseTTL
// without a renew, as Redis's do.
func newMemStoreLeases(leaseTTL time.Duration) *memStore {
	return &memStore{
		leaseTTL: leaseTTL,
		now:      time.Now,
		leases:   map[string]map[string]time.Time{},
		tats:     map[string]time.Time{},
		usage:    map[string]*usage{},
	}
}

// live is tenant's set of leases without the expired ones, which it drops.
func (m *memStore) live(tenant string, now time.Time) map[string]time.Time {
	set := m.leases[tenant]
	for id, exp := range set {
		if !exp.IsZero() && !exp.After(now) {
			delete(set, id)
		}
	}
	return set
}

func (m *memStore) expiry(now time.Time) time.Time {
	if m.leaseTTL <= 0 {
		return time.Time{}
	}
	return now.Add(m.leaseTTL)
}

func (m *memStore) acquire(_ context.Context, tenant, id string, limit int) (int64, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	m.sweep(now)
	set := m.live(tenant, now)
	if _, ok := set[id]; ok {
		set[id] = m.expiry(now) // held already: a retried acquire is a renew
		return int64(len(set)), true, nil
	}
	if len(set) >= limit {
		return int64(len(set)), false, nil
	}
	if set == nil {
		set = map[string]time.Time{}
		m.leases[tenant] = set
	}
	set[id] = m.expiry(now)
	return int64(len(set)), true, nil
}

func (m *memStore) release(_ context.Context, tenant, id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.leases[tenant], id)
	if len(m.leases[tenant]) == 0 {
		delete(m.leases, tenant)
	}
	return nil
}

// renew extends only the live leases: one that expired was counted out
// already, and bringing it back could put the tenant over its limit.
func (m *memStore) renew(_ context.Context, tenant string, ids []string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	set := m.live(tenant, now)
	for _, id := range ids {
		if _, ok := set[id]; ok {
			set[id] = m.expiry(now)
		}
	}
	return nil
}

func (m *memStore) held(_ context.Context, tenant string) (int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return int64(len(m.live(tenant, m.now()))), nil
}

// take is redisStore.take's GCRA on this process's clock, in nanoseconds.
func (m *memStore) take(_ context.Context, tenant string, n, rate int64) (bool, time.Duration, error) {
	if rate <= 0 || n <= 0 {
		return true, 0, nil
	}
	if n > rate {
		return false, overBurstWait(n, rate), nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	m.sweep(now)
	tat := m.tats[tenant]
	if tat.Before(now) {
		tat = now
	}
	tat = tat.Add(time.Duration(bucketCost(n, rate, time.Nanosecond)))
	if ahead := tat.Sub(now); ahead > time.Second {
		return false, ahead - time.Second, nil
	}
	m.tats[tenant] = tat
	return true, 0, nil
}

func (m *memStore) count(_ context.Context, tenant string, requests, n int64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	m.sweep(now)
	u := m.usage[tenant]
	if u == nil {
		u = newUsage()
		m.usage[tenant] = u
	}
	u.add(now, requests, n)
	return nil
}

func (m *memStore) windows(_ context.Context, tenant string) ([]Window, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	var mins [60]counts
	var hours [24]counts
	if u := m.usage[tenant]; u != nil {
		minute, hour := now.Unix()/60, now.Unix()/3600
		for i := range mins {
			mins[i] = u.minutes.get(minute - int64(i))
		}
		for i := range hours {
			hours[i] = u.hours.get(hour - int64(i))
		}
	}
	return windowsOf(now, mins, hours), nil
}

// sweep drops, at most every sweepEvery, the tenants with nothing left to
// count: no live lease, a full byte bucket, no use in the last day.
func (m *memStore) sweep(now time.Time) {
	if now.Sub(m.swept) < sweepEvery {
		return
	}
	m.swept = now
	for tenant := range m.leases {
		if len(m.live(tenant, now)) == 0 {
			delete(m.leases, tenant)
		}
	}
	for tenant, tat := range m.tats {
		if !tat.After(now) {
			delete(m.tats, tenant)
		}
	}
	for tenant, u := range m.usage {
		if now.Sub(u.last) > 25*time.Hour {
			delete(m.usage, tenant)
		}
	}
}

// usage is one tenant's buckets: rings indexed by the unix minute (hour)
// modulo their length, so an old bucket is dropped by the one that reuses
// its slot and a tenant costs a fixed 2 KiB whatever it sends.
type usage struct {
	minutes ring      // 60 slots
	hours   ring      // 24 slots
	last    time.Time // the last count, for sweep
}

func newUsage() *usage {
	return &usage{minutes: make(ring, 60), hours: make(ring, 24)}
}

func (u *usage) add(now time.Time, requests, n int64) {
	u.minutes.add(now.Unix()/60, requests, n)
	u.hours.add(now.Unix()/3600, requests, n)
	u.last = now
}

// slot is the bucket of one unix minute (or hour), at.
type slot struct {
	at int64
	counts
}

// ring holds the last len(r) buckets.
type ring []slot

func (r ring) add(at, requests, n int64) {
	s := &r[at%int64(len(r))]
	if s.at != at {
		*s = slot{at: at}
	}
	s.requests += requests
	s.bytes += n
}

func (r ring) get(at int64) counts {
	if s := r[at%int64(len(r))]; s.at == at {
		return s.counts
	}
	return counts{}
}

// counts are the requests and bytes of one bucket.
type counts struct{ requests, bytes int64 }

// windowsOf sums the buckets into the three windows; mins[i] is the bucket
// of i minutes ago, hours[i] of i hours ago (0: the current one).
//
// "1m" is an approximation, the sliding-window counter: the current minute
// plus the previous one weighted by how much of it is still within the last
// 60 s, as if the previous minute's requests had been spread evenly over it.
// "1h" is the last 60 minute buckets and "24h" the last 24 hour buckets, the
// current ones included, so they span a little less than the whole window.
func windowsOf(now time.Time, mins [60]counts, hours [24]counts) []Window {
	elapsed := float64(now.Unix()%60)/60 + float64(now.Nanosecond())/60e9
	keep := 1 - elapsed
	ws := []Window{
		{
			Window:   "1m",
			Requests: mins[0].requests + int64(math.Round(float64(mins[1].requests)*keep)),
			Bytes:    mins[0].bytes + int64(math.Round(float64(mins[1].bytes)*keep)),
		},
		{Window: "1h"},
		{Window: "24h"},
	}
	for _, c := range mins {
		ws[1].Requests += c.requests
		ws[1].Bytes += c.bytes
	}
	for _, c := range hours {
		ws[2].Requests += c.requests
		ws[2].Bytes += c.bytes
	}
	return ws
}

// bucketCost is the time, in units of unit and rounded up, that n bytes take
// to come back at rate bytes a second: the GCRA emission interval of n.
// Rounding up keeps many small takes from adding up to more than the rate.
// n <= rate (a larger n never fits), so the result is at most a second.
func bucketCost(n, rate int64, unit time.Duration) int64 {
	return int64(math.Ceil(float64(n) * float64(time.Second/unit) / float64(rate)))
}

// overBurstWait is the wait given for n bytes that exceed the burst (rate
// bytes) and so can never fit: n/rate seconds, rounded up, the time the
// bucket needs to refill n bytes. Taking nothing and saying "retry later"
// tells a client that splits its request how long to pace the parts,
// rather than promising that the same request will pass.
func overBurstWait(n, rate int64) time.Duration {
	secs := n / rate
	if n%rate != 0 {
		secs++
	}
	return time.Duration(secs) * time.Second
}
