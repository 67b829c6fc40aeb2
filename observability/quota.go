package observability

import (
	"cmp"
	"slices"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// DefaultTopTenants is how many tenants have series of their own in the
// quota metrics; the others are summed under "other", so that a deployment
// with thousands of tenants keeps a bounded number of series.
const DefaultTopTenants = 20

// OtherTenant labels the sum of the tenants outside the top ones.
const OtherTenant = "other"

// TenantUse is one tenant's use of one quota, for QuotaUse.
type TenantUse struct {
	Tenant, Quota string
	Use, Limit    float64
}

// quotaMetrics are the per-tenant quota series.
type quotaMetrics struct {
	use, limit *prometheus.GaugeVec
	refusals   *prometheus.CounterVec
	top        int

	mu      sync.Mutex
	current map[string]bool // the tenants with series of their own
}

func newQuotaMetrics(f promauto.Factory, top int) *quotaMetrics {
	if top <= 0 {
		top = DefaultTopTenants
	}
	return &quotaMetrics{
		top: top, current: map[string]bool{},
		use: f.NewGaugeVec(prometheus.GaugeOpts{Name: "rtstream_quota_use",
			Help: "A tenant's use of a count quota (streams, held_connections) or its recent byte rate, for the tenants nearest their limits; the others summed as tenant=\"other\"."},
			[]string{"tenant", "quota"}),
		limit: f.NewGaugeVec(prometheus.GaugeOpts{Name: "rtstream_quota_limit",
			Help: "The limit of the quota of rtstream_quota_use, with the same labels (0: no limit)."},
			[]string{"tenant", "quota"}),
		refusals: f.NewCounterVec(prometheus.CounterOpts{Name: "rtstream_quota_refusals_total",
			Help: "Requests refused because a tenant was over a quota, by tenant (the top ones, else \"other\") and quota."},
			[]string{"tenant", "quota"}),
	}
}

// QuotaRefused counts a refusal of tenant's request by quota.
func (m *Metrics) QuotaRefused(tenant, quota string) {
	if m == nil || m.quota == nil {
		return
	}
	q := m.quota
	q.mu.Lock()
	if !q.current[tenant] {
		tenant = OtherTenant
	}
	q.mu.Unlock()
	q.refusals.WithLabelValues(tenant, quota).Inc()
}

// QuotaUse replaces the use series with uses: the top tenants, by their
// highest use of a limited quota relative to its limit, keep a series each;
// the others' uses and limits are summed under "other".
func (m *Metrics) QuotaUse(uses []TenantUse) {
	if m == nil || m.quota == nil {
		return
	}
	q := m.quota
	worst := map[string]float64{}
	for _, u := range uses {
		if u.Limit > 0 {
			worst[u.Tenant] = max(worst[u.Tenant], u.Use/u.Limit)
		} else if _, ok := worst[u.Tenant]; !ok {
			worst[u.Tenant] = 0
		}
	}
	tenants := make([]string, 0, len(worst))
	for t := range worst {
		tenants = append(tenants, t)
	}
	slices.SortFunc(tenants, func(a, b string) int {
		switch {
		case worst[a] > worst[b]:
			return -1
		case worst[a] < worst[b]:
			return 1
		}
		return cmp.Compare(a, b)
	})
	top := map[string]bool{}
	for _, t := range tenants[:min(len(tenants), q.top)] {
		top[t] = true
	}
	type key struct{ tenant, quota string }
	use, limit := map[key]float64{}, map[key]float64{}
	for _, u := range uses {
		k := key{u.Tenant, u.Quota}
		if !top[u.Tenant] {
			k.tenant = OtherTenant
		}
		use[k] += u.Use
		limit[k] += u.Limit
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	q.current = top
	q.use.Reset()
	q.limit.Reset()
	for k, v := range use {
		q.use.WithLabelValues(k.tenant, k.quota).Set(v)
		q.limit.WithLabelValues(k.tenant, k.quota).Set(limit[k])
	}
}
