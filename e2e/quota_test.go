package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"github.com/rtstream/rtstream/client"
	"github.com/rtstream/rtstream/internal/testenv"
)

// quotaKeysFile writes an API_KEYS_FILE of alice (acme) and bob (globex),
// with tenants overrides.
func quotaKeysFile(t *testing.T, tenants map[string]any) string {
	t.Helper()
	all := []string{"streams:write", "streams:read", "events:write", "results:read"}
	path := filepath.Join(t.TempDir(), "keys.json")
	writeAtomically(t, path, mustJSON(t, map[string]any{
		"keys": []map[string]any{
			{"name": "alice", "tenant": "acme", "scopes": all, "sha256": sha(aliceKey)},
			{"name": "bob", "tenant": "globex", "scopes": all, "sha256": sha(bobKey)},
		},
		"tenants": tenants,
	}))
	return path
}

// usageOf reads GET /v1/usage with key.
func usageOf(t *testing.T, base, key string) (u struct {
	Tenant string `json:"tenant"`
	Quotas map[string]struct {
		Used  int64 `json:"used"`
		Limit int64 `json:"limit"`
	} `json:"quotas"`
	Sent map[string]struct{ Requests, Bytes int64 } `json:"sent"`
}) {
	t.Helper()
	rep := as(t, key, http.MethodGet, base+"/v1/usage", "", nil)
	if rep.Status != http.StatusOK {
		t.Fatalf("GET /v1/usage: %s", rep)
	}
	decodeJSON(t, "usage", rep.Body, &u)
	return u
}

// checkQuotaExceeded checks a 403 quota-exceeded naming quota and limit.
func checkQuotaExceeded(t *testing.T, what string, rep reply, quota string, limit int) {
	t.Helper()
	p := checkProblem(t, what, rep, http.StatusForbidden)
	if !strings.HasSuffix(p.Type, "/quota-exceeded") || !strings.Contains(p.Detail, quota) || !strings.Contains(p.Detail, fmt.Sprintf("limit %d", limit)) {
		t.Errorf("%s: problem %s, want type …/quota-exceeded naming %s and its limit %d", what, rep.Body, quota, limit)
	}
}

// TestStreamsQuota: with QUOTA_STREAMS=3 three creates give 201 and the
// fourth 403 naming the quota, creating nothing; a PUT of an existing stream
// is not a new one; a delete frees a place at once; the usage route shows 3
// of 3; another tenant, with its own override, is unaffected.
func TestStreamsQuota(t *testing.T) {
	t.Parallel()
	env := kafkaEnv(testenv.KafkaBrokers(t), newPrefix(t, "quota"))
	env["QUOTA_STREAMS"] = "3"
	env["API_KEYS_FILE"] = quotaKeysFile(t, map[string]any{"globex": map[string]any{"streams": 5}})
	s := startServer(t, "A", env)
	create := func(key, name string) reply {
		return as(t, key, http.MethodPost, s.Base+"/v1/streams", "application/json", []byte(`{"name":"`+name+`"}`))
	}
	var ids []string
	for i := range 3 {
		rep := create(aliceKey, fmt.Sprint("s", i))
		if rep.Status != http.StatusCreated {
			t.Fatalf("create %d: %s", i, rep)
		}
		var st streamObj
		decodeJSON(t, "stream", rep.Body, &st)
		ids = append(ids, st.ID)
	}
	checkQuotaExceeded(t, "fourth create", create(aliceKey, "s3"), "streams", 3)
	checkQuotaExceeded(t, "PUT of a new id", as(t, aliceKey, http.MethodPut, s.Base+"/v1/streams/new-one", "application/json", []byte(`{"name":"n"}`)), "streams", 3)
	if rep := as(t, aliceKey, http.MethodGet, s.Base+"/v1/streams", "", nil); strings.Count(string(rep.Body), `"id"`) != 3 {
		t.Errorf("after the refusals acme lists %s, want 3 streams", rep.Body)
	}
	if u := usageOf(t, s.Base, aliceKey); u.Tenant != "acme" || u.Quotas["streams"].Used != 3 || u.Quotas["streams"].Limit != 3 {
		t.Errorf("usage %+v, want acme with streams 3 of 3", u)
	}
	// The Go client reads the same, and sees the refusal as a quota.
	c, err := client.New(s.Base, client.WithAPIKey(aliceKey))
	if err != nil {
		t.Fatal(err)
	}
	if u, err := c.Usage(t.Context()); err != nil || u.Tenant != "acme" || u.Quotas["streams"] != (client.QuotaUsage{Used: 3, Limit: 3}) {
		t.Errorf("client Usage: %+v, %v; want acme with streams 3 of 3", u, err)
	}
	// And so does the CLI (a plain API_KEYS key: tenant default, its own
	// streams none).
	if out := (ctl{t: t, bin: buildCLI(t), base: s.Base}).mustRun("", "usage"); !strings.Contains(out, `"tenant":"default"`) || !strings.Contains(out, `"streams":{"used":0,"limit":3}`) {
		t.Errorf("rtstreamctl usage: %s", out)
	}
	var ce *client.Error
	if _, err := c.CreateStream(t.Context(), "over", nil); !errors.As(err, &ce) || ce.StatusCode != http.StatusForbidden || !strings.HasSuffix(ce.Type, "/quota-exceeded") {
		t.Errorf("client create over the quota: %v, want a 403 quota-exceeded *client.Error", err)
	}
	// The same stream again is no new stream.
	if rep := as(t, aliceKey, http.MethodPut, s.Base+"/v1/streams/"+ids[0], "application/json", []byte(`{"name":"s0"}`)); rep.Status != http.StatusOK {
		t.Errorf("PUT of an existing stream at the quota: %s, want 200", rep)
	}
	for i := range 4 {
		if rep := create(bobKey, fmt.Sprint("g", i)); rep.Status != http.StatusCreated {
			t.Errorf("globex create %d while acme is at its quota: %s", i, rep)
		}
	}
	if u := usageOf(t, s.Base, bobKey); u.Quotas["streams"].Used != 4 || u.Quotas["streams"].Limit != 5 {
		t.Errorf("globex usage %+v, want streams 4 of 5 (its override)", u.Quotas)
	}
	if rep := as(t, aliceKey, http.MethodDelete, s.Base+"/v1/streams/"+ids[1], "", nil); rep.Status != http.StatusNoContent {
		t.Fatalf("delete: %s", rep)
	}
	if rep := create(aliceKey, "after-delete"); rep.Status != http.StatusCreated {
		t.Errorf("create after a delete: %s, want 201", rep)
	}
}

// TestHeldConnectionsQuota: two instances sharing Redis hold at most
// QUOTA_HELD_CONNECTIONS of a tenant's connections between them; a
// connection closed frees its place.
func TestHeldConnectionsQuota(t *testing.T) {
	t.Parallel()
	env := kafkaEnv(testenv.KafkaBrokers(t), newPrefix(t, "held"))
	env["REDIS_URL"] = testenv.RedisURL(t)
	env["QUOTA_HELD_CONNECTIONS"] = "3"
	env["API_KEYS_FILE"] = quotaKeysFile(t, nil)
	a := startServer(t, "A", env)
	b := startServer(t, "B", env)
	rep := as(t, aliceKey, http.MethodPost, a.Base+"/v1/streams", "application/json", []byte(`{"name":"held"}`))
	var st streamObj
	decodeJSON(t, "stream", rep.Body, &st)
	hdr := http.Header{"X-API-Key": {aliceKey}}
	open := func(s *server) (*sseConn, reply) { return trySSE(t, s.Base+"/v1/streams/"+st.ID+"/results", hdr) }
	var conns []*sseConn
	for i, s := range []*server{a, b, a} {
		c, rep := open(s)
		if c == nil {
			t.Fatalf("connection %d: %s", i, rep)
		}
		conns = append(conns, c)
	}
	for _, s := range []*server{a, b} {
		if c, rep := open(s); c != nil {
			c.close()
			t.Errorf("a fourth connection on %s was accepted", s.name)
		} else {
			checkQuotaExceeded(t, "fourth connection on "+s.name, rep, "held_connections", 3)
		}
	}
	if u := usageOf(t, a.Base, aliceKey); u.Quotas["held_connections"].Used != 3 {
		t.Errorf("usage %+v, want 3 held connections", u.Quotas)
	}
	// Poll with wait is held too.
	if rep := as(t, aliceKey, http.MethodGet, b.Base+"/v1/streams/"+st.ID+"/results?wait=1s", "", nil); rep.Status != http.StatusForbidden {
		t.Errorf("a long poll over the quota: %s, want 403", rep)
	}
	conns[1].close() // on B
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, rep := open(a)
		if c != nil {
			c.close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after a connection closed, a new one is still refused: %s", rep)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestIngestBytesQuota: two instances sharing Redis accept together about
// QUOTA_INGEST_BYTES_PER_SECOND bytes a second (within 10%, the one-second
// burst aside); a refused batch is 429 with Retry-After, and nothing of it
// reaches Kafka: the events topic holds exactly the accepted events.
func TestIngestBytesQuota(t *testing.T) {
	t.Parallel()
	const rate = 20_000
	brokers := testenv.KafkaBrokers(t)
	prefix := newPrefix(t, "bytes")
	env := kafkaEnv(brokers, prefix)
	env["REDIS_URL"] = testenv.RedisURL(t)
	env["QUOTA_INGEST_BYTES_PER_SECOND"] = fmt.Sprint(rate)
	a := startServer(t, "A", env)
	b := startServer(t, "B", env)
	st := createStream(t, a.Base+"/v1/streams", "bytes")
	event := `{"pad":"` + strings.Repeat("x", 90) + `"}` // 100 bytes
	batch := []byte("[" + strings.TrimSuffix(strings.Repeat(event+",", 10), ",") + "]")
	const duration = 6 * time.Second
	var accepted, refused, events atomic.Int64
	var wg sync.WaitGroup
	ctx, cancel := context.WithTimeout(context.Background(), duration)
	defer cancel()
	start := time.Now()
	for _, s := range []*server{a, b, a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				rep, err := tryCall(context.Background(), http.MethodPost, s.Base+"/v1/streams/"+st.ID+"/events", "application/json", batch)
				switch {
				case err != nil:
					t.Errorf("send: %v", err)
					return
				case rep.Status == http.StatusAccepted:
					accepted.Add(1000)
					events.Add(10)
				case rep.Status == http.StatusTooManyRequests && rep.Header.Get("Retry-After") != "":
					refused.Add(1)
					time.Sleep(20 * time.Millisecond)
				default:
					t.Errorf("send: %s", rep)
					return
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start).Seconds()
	perSecond := float64(accepted.Load()-rate) / elapsed // the first second's burst aside
	t.Logf("accepted %d bytes (%d events) in %.1f s: %.0f bytes/s beyond the burst; %d batches refused", accepted.Load(), events.Load(), elapsed, perSecond, refused.Load())
	if perSecond < rate*0.9 || perSecond > rate*1.1 || refused.Load() == 0 {
		t.Errorf("%.0f bytes/s accepted across both instances, want %d ± 10%%, with refusals", perSecond, rate)
	}
	if n := countEvents(t, brokers, prefix+".events", st.ID); n != events.Load() {
		t.Errorf("the events topic holds %d events of the stream, the sends accepted %d: a refused batch left something", n, events.Load())
	}
}

// countEvents reads every events record of streamID back from Kafka with a
// plain client and counts their events.
func countEvents(t *testing.T, brokers, topic, streamID string) int64 {
	t.Helper()
	cfg := sarama.NewConfig()
	cfg.Version = sarama.V3_6_0_0
	consumer, err := sarama.NewConsumer(strings.Split(brokers, ","), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer consumer.Close()
	parts, err := consumer.Partitions(topic)
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, p := range parts {
		for _, m := range readPartition(t, consumer, topic, p) {
			if string(m.Key) != streamID {
				continue
			}
			var rec struct {
				Events []json.RawMessage `json:"events"`
			}
			decodeJSON(t, "events record", m.Value, &rec)
			n += int64(len(rec.Events))
		}
	}
	return n
}
