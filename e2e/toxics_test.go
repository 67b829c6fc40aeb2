package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/rs/zerolog"
)

// proxiedKafka is a private broker that every client reaches through an
// in-process toxiproxy: the broker listens on one port and advertises the
// proxy's (scripts/kafka.sh KAFKA_ADVERTISED_PORT), so the connections a
// client opens after bootstrapping, to the address the broker hands out, go
// through the proxy as well. Toxics added to the proxy then act on every
// byte between the server and Kafka, and nothing else.
type proxiedKafka struct {
	broker *privateKafka
	proxy  *toxiproxy.Proxy
	// Addr is the proxy's address: the only one clients should be given.
	Addr string
}

// startProxiedKafka starts the proxy and then the broker behind it (the
// broker may dial its own advertised address, so the proxy comes first),
// and stops both when the test ends. Ports are free when chosen; if one is
// taken before it is bound, new ones are tried.
func startProxiedKafka(t *testing.T) *proxiedKafka {
	t.Helper()
	api := toxiproxy.NewServer(toxiproxy.NewMetricsContainer(nil), zerolog.Nop())
	var last error
	for range 3 {
		_, port, _ := strings.Cut(freeAddr(t), ":")
		_, ctrl, _ := strings.Cut(freeAddr(t), ":")
		proxy := toxiproxy.NewProxy(api, "kafka", "127.0.0.1:0", "127.0.0.1:"+port)
		if last = proxy.Start(); last != nil {
			continue
		}
		_, proxyPort, _ := strings.Cut(proxy.Listen, ":")
		k := &privateKafka{port: port, env: []string{
			"KAFKA_DATA_DIR=" + t.TempDir(),
			"KAFKA_PORT=" + port,
			"KAFKA_CONTROLLER_PORT=" + ctrl,
			"KAFKA_ADVERTISED_PORT=" + proxyPort,
			"KAFKA_HEAP_OPTS=-Xms128m -Xmx512m",
			"KAFKA_START_TIMEOUT=120",
		}}
		if last = k.run("start", 150*time.Second); last == nil {
			pk := &proxiedKafka{broker: k, proxy: proxy, Addr: proxy.Listen}
			t.Cleanup(func() {
				proxy.Stop()
				if err := k.run("stop", 60*time.Second); err != nil {
					t.Errorf("stopping the private broker: %v", err)
				}
			})
			return pk
		}
		proxy.Stop()
		_ = k.run("stop", 60*time.Second)
	}
	t.Fatalf("starting a private broker behind a proxy: %v", last)
	return nil
}

// toxic adds a toxic given as toxiproxy's JSON (name, type, stream,
// toxicity, attributes) to every connection, open or future, and returns
// the function that removes it again.
func (k *proxiedKafka) toxic(t *testing.T, spec string) (remove func()) {
	t.Helper()
	w, err := k.proxy.Toxics.AddToxicJson(strings.NewReader(spec))
	if err != nil {
		t.Fatalf("adding toxic %s: %v", spec, err)
	}
	return func() {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := k.proxy.Toxics.RemoveToxic(ctx, w.Name); err != nil {
			t.Errorf("removing toxic %s: %v", w.Name, err)
		}
	}
}

// cut makes Kafka unreachable the way a dead host is: the proxy stops
// listening (connections are refused) and drops every connection it
// carries. The returned function lets connections through again.
func (k *proxiedKafka) cut(t *testing.T) (restore func()) {
	t.Helper()
	k.proxy.Stop()
	return func() {
		t.Helper()
		// The same address again; a free port may be taken in between, so
		// retry for a little while.
		var err error
		for range 50 {
			if err = k.proxy.Start(); err == nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Fatalf("restarting the proxy on %s: %v", k.Addr, err)
	}
}

// toxicSpec is toxiproxy's JSON for one toxic.
func toxicSpec(name, typ, stream string, attrs string) string {
	return fmt.Sprintf(`{"name":%q,"type":%q,"stream":%q,"toxicity":1,"attributes":%s}`, name, typ, stream, attrs)
}

// netLoad is the load TestNetFaults keeps on the server while the network
// fails: one sender per stream POSTing batches of 1 to 10 events one
// request at a time (so its acknowledged events have one order), retrying
// what was not acknowledged, and one resuming SSE subscriber per stream.
// Every send attempt's answer and its time are kept, to be judged per
// fault.
type netLoad struct {
	faultTraffic
}

func startNetLoad(t *testing.T, base string, ids []string, churn int, hangBound time.Duration) *netLoad {
	l := &netLoad{faultTraffic: newFaultTraffic(t, hangBound, true)}
	for i, id := range ids {
		l.addSub(fmt.Sprintf("sub-%d", i), id, churn)
	}
	l.follow([]string{base})
	for i, id := range ids {
		l.sendWG.Go(func() { l.sender([]string{base}, i, id, 0, 29) })
	}
	return l
}

// slowest is the longest any answer took.
func (l *netLoad) slowest() time.Duration {
	return l.answersIn(time.Time{}, time.Now().Add(time.Hour)).slowest.elapsed
}

// readyzWatch asks GET /readyz every 250 ms for the whole test and keeps
// the answers, so that each fault can be judged afterwards.
type readyzWatch struct {
	mu      sync.Mutex
	answers []readyzAnswer
}

type readyzAnswer struct {
	at, answered time.Time // asked, answered
	status       int       // 0: no answer
	detail       string
}

func watchReadyz(t *testing.T, base string) *readyzWatch {
	w := &readyzWatch{}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	wg.Go(func() {
		for ctx.Err() == nil {
			rctx, rcancel := context.WithTimeout(ctx, 10*time.Second)
			at := time.Now()
			rep, err := tryCall(rctx, http.MethodGet, base+"/readyz", "", nil)
			rcancel()
			a := readyzAnswer{at: at, answered: time.Now(), status: rep.Status}
			if err == nil && rep.Status != http.StatusOK {
				var p problemBody
				_ = json.Unmarshal(rep.Body, &p)
				a.detail = p.Detail
			}
			w.mu.Lock()
			w.answers = append(w.answers, a)
			w.mu.Unlock()
			select {
			case <-ctx.Done():
			case <-time.After(250 * time.Millisecond):
			}
		}
	})
	return w
}

// readyzStats sums up the /readyz answers to requests made in one window.
type readyzStats struct {
	ok, unready, kafka503, none int
	example                     string
}

func (s readyzStats) String() string {
	str := fmt.Sprintf("%d×200, %d×503 (%d naming kafka), %d none", s.ok, s.unready, s.kafka503, s.none)
	if s.example != "" {
		str += fmt.Sprintf(" (%q)", s.example)
	}
	return str
}

// firstKafka503 is how long after from /readyz first answered 503 naming
// kafka, to a request made before to; false if it never did.
func (w *readyzWatch) firstKafka503(from, to time.Time) (time.Duration, bool) {
	for _, a := range within(&w.mu, &w.answers, func(a readyzAnswer) time.Time { return a.at }, from, to) {
		if a.status == http.StatusServiceUnavailable && strings.Contains(a.detail, "kafka") {
			return a.answered.Sub(from), true
		}
	}
	return 0, false
}

func (w *readyzWatch) in(from, to time.Time) readyzStats {
	var s readyzStats
	for _, a := range within(&w.mu, &w.answers, func(a readyzAnswer) time.Time { return a.at }, from, to) {
		switch a.status {
		case http.StatusOK:
			s.ok++
		case 0:
			s.none++
		default:
			s.unready++
			if strings.Contains(a.detail, "kafka") {
				s.kafka503++
			}
			if s.example == "" {
				s.example = a.detail
			}
		}
	}
	return s
}
