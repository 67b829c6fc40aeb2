package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"text/template"
	"time"

	"github.com/rtstream/rtstream/client"
	"github.com/rtstream/rtstream/internal/testenv"
)

// TestBehindHAProxy runs three instances behind a real HAProxy (round robin,
// health checks on /readyz) with senders (plain HTTP and the Go client) and
// resuming subscribers (plain SSE and the Go client) that talk only to
// HAProxy, and under that load (a) restarts every instance in turn, SIGTERM
// then start, (b) kills one with SIGKILL and starts it again, (c) adds a
// fourth instance and stops it again. Then: no acknowledged event lost, no
// subscriber saw a duplicate or a reordering, every plain send was answered
// 202 or 503 with Retry-After (sendOnce fails the test on anything else),
// and every Go client send succeeded within its retries.
func TestBehindHAProxy(t *testing.T) {
	t.Parallel()
	brokers := testenv.KafkaBrokers(t)
	haproxy, err := exec.LookPath("haproxy")
	if err != nil {
		testenv.Missing(t, "haproxy is not on PATH: run scripts/haproxy.sh install (Debian's haproxy)")
	}
	addrs := []string{freeAddr(t), freeAddr(t), freeAddr(t), freeAddr(t)}
	lb := startHAProxy(t, haproxy, addrs)
	env := kafkaEnv(brokers, newPrefix(t, "lb"))
	// HAProxy marks a server down after two failed checks 500 ms apart:
	// the drain outlasts that, so no new request reaches a stopping one.
	env["SHUTDOWN_DRAIN_DELAY"] = "1500ms"
	env["SHUTDOWN_TIMEOUT"] = "10s"
	servers := make([]*server, len(addrs))
	start := func(i int) {
		e := maps.Clone(env)
		e["HTTP_ADDR"] = addrs[i]
		servers[i] = startServer(t, fmt.Sprintf("lb-%d", i), e)
	}
	for i := range 3 {
		start(i)
	}
	lb.waitUp(t, 3)

	ids := make([]string, 6)
	for i := range ids {
		ids[i] = createStream(t, lb.base+"/v1/streams", fmt.Sprintf("lb-%d", i)).ID
	}
	load := startFaultLoad(t, []string{lb.base}, ids, 1, 1, 2, 30*time.Second)
	gc := startClientTraffic(t, lb.base, ids, load)
	const step = 300
	load.waitAcked(step, 60*time.Second)

	for i := range 3 { // (a) a rolling restart
		if err := servers[i].stop(); err != nil {
			t.Fatalf("SIGTERM %s: %v", servers[i].name, err)
		}
		servers[i].restart()
		lb.waitUp(t, 3)
		load.waitAcked(load.acked.Load()+step, 60*time.Second)
		t.Logf("rolling restart: %s back, %d events acknowledged", servers[i].name, load.acked.Load())
	}
	if err := servers[1].kill(); err != nil { // (b) a crash
		t.Fatal(err)
	}
	load.waitAcked(load.acked.Load()+step, 60*time.Second)
	servers[1].restart()
	lb.waitUp(t, 3)
	load.waitAcked(load.acked.Load()+step, 60*time.Second)
	start(3) // (c) 3 -> 4 -> 3
	lb.waitUp(t, 4)
	load.waitAcked(load.acked.Load()+step, 60*time.Second)
	if err := servers[3].stop(); err != nil {
		t.Fatalf("SIGTERM %s: %v", servers[3].name, err)
	}
	lb.waitUp(t, 3)
	load.waitAcked(load.acked.Load()+step, 60*time.Second)

	// Every sender stops before any subscriber is judged: an event
	// acknowledged after a subscriber stopped would count as lost.
	gc.stopSend()
	gc.sendWG.Wait()
	v := load.finish(60 * time.Second)
	v.add(gc.finish(t, 60*time.Second))
	t.Logf("%d events acknowledged; over %d subscriptions %d results expected, %d received, %d of events whose sender got no 202 "+
		"(HAProxy sent the request again after an instance died with it); %d plain sends answered 503, %d without an answer; Go client: %d sends, %d retried",
		load.acked.Load(), len(ids)*2, v.Acked, v.Received, v.Unacked, load.refused.Load(), load.lostAnswers.Load(), gc.sends, gc.retried)
	if v.Lost+v.Duplicated+v.Reordered > 0 {
		t.Errorf("lost %d, duplicated %d, reordered %d (examples: %v %v %v)", v.Lost, v.Duplicated, v.Reordered, v.LostIDs, v.DupIDs, v.ReorderedPairs)
	}
	if n := load.lostAnswers.Load(); n > 0 {
		t.Errorf("%d sends got no answer through HAProxy: it must answer every one (202, or 503 with Retry-After)", n)
	}
}

// haproxy is a load balancer process of one test, with its stats socket.
type haproxy struct {
	base, sock string
}

var haproxyConfig = template.Must(template.New("haproxy").Parse(`
global
    stats socket {{.Sock}} mode 600 level admin
    maxconn 4096
defaults
    mode http
    timeout connect 2s
    timeout client 60s
    timeout server 60s
    timeout http-request 10s
    timeout queue 5s
    # A request whose server died before it answered is sent to another
    # one; a send there is new (the answer of the first was never given).
    option redispatch
    retries 3
    retry-on conn-failure empty-response response-timeout
frontend api
    bind {{.Listen}}
    default_backend rtstream
backend rtstream
    balance roundrobin
    option httpchk GET /readyz
    http-check expect status 200
    default-server inter 500ms fall 2 rise 2
{{- range $i, $a := .Servers}}
    server s{{$i}} {{$a}} check
{{- end}}
`))

// startHAProxy starts haproxy in front of addrs (servers not yet listening
// are down until their checks pass) and stops it when the test ends.
func startHAProxy(t *testing.T, bin string, addrs []string) *haproxy {
	t.Helper()
	dir := t.TempDir()
	listen := freeAddr(t)
	h := &haproxy{base: "http://" + listen, sock: filepath.Join(dir, "stats.sock")}
	cfg := filepath.Join(dir, "haproxy.cfg")
	f, err := os.Create(cfg)
	if err != nil {
		t.Fatal(err)
	}
	err = haproxyConfig.Execute(f, map[string]any{"Sock": h.sock, "Listen": listen, "Servers": addrs})
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(dir, "haproxy.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-db", "-f", cfg)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatalf("start haproxy: %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		logf.Close()
		if t.Failed() {
			out, _ := os.ReadFile(logPath)
			t.Logf("---- haproxy log ----\n%s", out)
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := h.status(); err == nil {
			return h
		}
		if time.Now().After(deadline) {
			t.Fatal("haproxy's stats socket did not answer within 10s")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// status is each server's state as HAProxy sees it (UP, DOWN, ...).
func (h *haproxy) status() (map[string]string, error) {
	c, err := net.DialTimeout("unix", h.sock, time.Second)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Write([]byte("show stat\n")); err != nil {
		return nil, err
	}
	st := map[string]string{}
	sc := bufio.NewScanner(c)
	for sc.Scan() {
		f := strings.Split(sc.Text(), ",")
		if len(f) > 17 && f[0] == "rtstream" && strings.HasPrefix(f[1], "s") {
			st[f[1]] = f[17]
		}
	}
	return st, sc.Err()
}

// waitUp waits until exactly n servers are UP in HAProxy.
func (h *haproxy) waitUp(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		st, err := h.status()
		up := 0
		for _, s := range st {
			if s == "UP" {
				up++
			}
		}
		if err == nil && up == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("HAProxy: %d servers UP, want %d (%v, %v)", up, n, st, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// clientTraffic is the Go client's part of the load: one sender and one
// subscriber per stream, both through the load balancer.
type clientTraffic struct {
	load            *faultLoad
	ctx             context.Context
	stopSend, stop  context.CancelFunc
	sendWG, subWG   sync.WaitGroup
	subs, subStream []string
	mu              sync.Mutex
	sends, retried  int
}

func startClientTraffic(t *testing.T, base string, ids []string, load *faultLoad) *clientTraffic {
	cl, err := client.New(base, client.WithAPIKey(apiKey))
	if err != nil {
		t.Fatal(err)
	}
	g := &clientTraffic{load: load}
	var subCtx, sendCtx context.Context
	subCtx, g.stop = context.WithCancel(context.Background())
	sendCtx, g.stopSend = context.WithCancel(context.Background())
	t.Cleanup(func() { g.stopSend(); g.stop(); g.sendWG.Wait(); g.subWG.Wait() })
	for i, id := range ids {
		name := fmt.Sprintf("go-client-sub-%d", i)
		g.subs, g.subStream = append(g.subs, name), append(g.subStream, id)
		g.subWG.Go(func() {
			for r, err := range cl.Subscribe(subCtx, id, client.SubscribeOptions{Earliest: true}) {
				if err != nil {
					if subCtx.Err() == nil {
						t.Errorf("%s: %v", name, err)
					}
					return
				}
				load.chk.receivedAt(name, id, r.EventID, r.Cursor)
			}
		})
		g.sendWG.Go(func() { g.send(t, sendCtx, cl, id, fmt.Sprintf("go-client-sender-%d", i)) })
	}
	return g
}

// send sends batches of 3 events with retries under an Idempotency-Key
// until ctx ends; each must succeed.
func (g *clientTraffic) send(t *testing.T, ctx context.Context, cl *client.Client, id, name string) {
	for n := 0; ctx.Err() == nil; n += 3 {
		evs := make([]json.RawMessage, 3)
		for k := range evs {
			evs[k] = json.RawMessage(fmt.Sprintf(`{"sender":%q,"n":%d}`, name, n+k))
		}
		sctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		res, err := cl.SendBatch(sctx, id, evs, client.SendOptions{Retry: true})
		cancel()
		if err != nil {
			t.Errorf("%s: a send with retries failed: %v", name, err)
			return
		}
		g.load.chk.ack(id, name, res.EventIDs)
		g.load.acked.Add(int64(len(res.EventIDs)))
		g.mu.Lock()
		g.sends++
		if res.Attempts > 1 {
			g.retried++
		}
		g.mu.Unlock()
		time.Sleep(50 * time.Millisecond)
	}
}

// finish waits for the subscribers to have every acknowledged event (the
// senders stopped), stops them and returns the checker's verdict on them.
func (g *clientTraffic) finish(t *testing.T, max time.Duration) verdict {
	deadline := time.Now().Add(max)
	for j, name := range g.subs {
		for g.load.chk.missing(name, g.subStream[j]) > 0 && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
	}
	time.Sleep(time.Second)
	g.stop()
	g.subWG.Wait()
	var v verdict
	for j, name := range g.subs {
		v.add(g.load.chk.check(name, g.subStream[j]))
	}
	return v
}
