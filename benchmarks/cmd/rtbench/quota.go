package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// The quota phase answers issue 20: the quota checks may cost at most 2% of
// single-event send throughput. Held connections are counted per connection
// and streams per create, so a send meets the byte-rate quota only: a take
// from the tenant's bucket in Redis, shared by every instance. Both servers
// use the same Redis (-redis) and differ in QUOTA_INGEST_BYTES_PER_SECOND:
//
//	ON:  1,000,000,000 bytes a second: every send takes from the bucket (one
//	     Redis round trip) and is let through
//	OFF: unset (off): no take; the usage tally, in memory, runs on both
//
// The verdict is on throughput, like the metrics phase.
func quotaComparison(o options) comparison {
	env := []string{"REDIS_URL=" + o.RedisURL}
	return comparison{
		phase:  "quota",
		on:     serverVariant{name: "quota-on", auth: true, logLevel: "warn", env: append([]string{"QUOTA_INGEST_BYTES_PER_SECOND=1000000000"}, env...)},
		off:    serverVariant{name: "quota-off", auth: true, logLevel: "warn", env: env},
		rounds: o.MWRounds,
		target: targetQuotaCost,
		check:  checkQuotaDiffer,
	}
}

// checkQuotaDiffer reads both servers' usage: ON's byte quota must be the
// one set, OFF's none, or QUOTA_INGEST_BYTES_PER_SECOND does not switch what
// the phase measures.
func checkQuotaDiffer(ctx context.Context, on, off *compareSide) (string, error) {
	onBody, err := on.lt.get(ctx, "/v1/usage")
	if err != nil {
		return "", err
	}
	offBody, err := off.lt.get(ctx, "/v1/usage")
	if err != nil {
		return "", err
	}
	const onLimit, offLimit = `"ingest_bytes_per_second":{"used":`, `"limit":0}`
	if !strings.Contains(onBody, onLimit) || !strings.Contains(onBody, `"limit":1000000000`) {
		return "", fmt.Errorf("ON's usage shows no byte quota of 1,000,000,000: %s", onBody)
	}
	if i := strings.Index(offBody, `"ingest_bytes_per_second"`); i < 0 || !strings.Contains(offBody[i:], offLimit) {
		return "", fmt.Errorf("OFF's usage shows a byte quota: %s", offBody)
	}
	return "ON has a byte quota of 1,000,000,000 bytes/s in Redis, OFF none", nil
}

// get reads one API answer with the load tester's key.
func (lt *loadTester) get(ctx context.Context, path string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, lt.srv.URL+path, nil)
	if err != nil {
		return "", err
	}
	lt.auth(req)
	resp, err := lt.http.Do(req)
	if err != nil {
		return "", fmt.Errorf("GET %s%s: %w", lt.srv.Name, path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("GET %s%s: %s %s", lt.srv.Name, path, resp.Status, body)
	}
	return string(body), err
}
