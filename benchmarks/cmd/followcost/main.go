// Command followcost measures what following the results topic costs an
// instance: it sends batches to instance A and reads the CPU time of A and
// of B, a second instance on the same topics that holds no subscriber (or,
// with a fourth argument, one SSE subscriber per stream) and takes no share
// of the routing (docs/scaling.md, benchmarks/RESULTS.md). Start B with
// KAFKA_SESSION_TIMEOUT below the broker's group.min.session.timeout.ms:
// the broker then refuses its router's join, and B only follows.
//
//	followcost http://A pidA pidB [http://B]    (BATCH=100 events a POST)
package main

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

func cpuTicks(pid string) float64 {
	b, _ := os.ReadFile("/proc/" + pid + "/stat")
	f := strings.Fields(string(b)[strings.LastIndex(string(b), ")")+2:])
	u, _ := strconv.ParseFloat(f[11], 64)
	s, _ := strconv.ParseFloat(f[12], 64)
	return (u + s) / 100
}

var batchN = 100

func main() {
	if v := os.Getenv("BATCH"); v != "" {
		batchN, _ = strconv.Atoi(v)
	}
	a, pidA, pidB := os.Args[1], os.Args[2], os.Args[3]
	subB := ""
	if len(os.Args) > 4 {
		subB = os.Args[4]
	}
	var streams []string
	for i := range 16 {
		resp, err := http.Post(a+"/v1/streams", "application/json", strings.NewReader(fmt.Sprintf(`{"name":"f%d"}`, i)))
		if err != nil {
			panic(err)
		}
		var buf bytes.Buffer
		buf.ReadFrom(resp.Body)
		resp.Body.Close()
		s := buf.String()
		i := strings.Index(s, `"id":"`) + 6
		streams = append(streams, s[i:i+strings.Index(s[i:], `"`)])
	}
	var body bytes.Buffer
	body.WriteByte('[')
	for i := range batchN {
		if i > 0 {
			body.WriteByte(',')
		}
		fmt.Fprintf(&body, `{"user":"user-%05d","action":"click","value":%d.25,"tags":["web","eu"],"ok":true}`, i, i)
	}
	body.WriteByte(']')
	var sent, got atomic.Int64
	if subB != "" {
		for _, id := range streams {
			req, _ := http.NewRequest("GET", subB+"/v1/streams/"+id+"/results", nil)
			req.Header.Set("Accept", "text/event-stream")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				panic(err)
			}
			go func() {
				buf := make([]byte, 64<<10)
				for {
					n, err := resp.Body.Read(buf)
					got.Add(int64(bytes.Count(buf[:n], []byte("event: result"))))
					if err != nil {
						return
					}
				}
			}()
		}
	}
	stop := time.Now().Add(15 * time.Second)
	time.Sleep(time.Second)
	a0, b0, t0 := cpuTicks(pidA), cpuTicks(pidB), time.Now()
	var wg sync.WaitGroup
	for w := range 64 {
		wg.Go(func() {
			for i := 0; time.Now().Before(stop); i++ {
				resp, err := http.Post(a+"/v1/streams/"+streams[(w+i)%16]+"/events", "application/json", bytes.NewReader(body.Bytes()))
				if err == nil {
					if resp.StatusCode == 202 {
						sent.Add(int64(batchN))
					}
					resp.Body.Close()
				}
			}
		})
	}
	wg.Wait()
	time.Sleep(2 * time.Second) // B drains what A's router made
	el := time.Since(t0).Seconds()
	ca, cb := cpuTicks(pidA)-a0, cpuTicks(pidB)-b0
	fmt.Printf("results received on B: %d\n", got.Load())
	fmt.Printf("events %d in %.1fs (%.0f/s); A %.2f cores; B %.2f cores; B CPU per result %.2f µs\n",
		sent.Load(), el, float64(sent.Load())/el, ca/el, cb/el, cb/float64(sent.Load())*1e6)
}
