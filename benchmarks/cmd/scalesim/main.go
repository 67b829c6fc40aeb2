// Command scalesim sizes an rtstream fleet for a load, under two designs of
// the results side, from the per-core figures rtbench measured
// (docs/scaling.md): how many instances, partitions and brokers a number of
// subscribers or an event rate takes, and where "every instance follows the
// whole results topic" stops scaling.
//
// It places subscribers on instances at random (Monte Carlo, like a round
// robin load balancer does) to find how many streams each instance must
// decode, and sums each instance's CPU: its share of ingest, routing and
// deliveries, plus following the results topic, which is the whole topic in
// design A (today) and only its own partitions in design B (subscribers
// placed by stream, each instance following the partitions of its streams).
//
//	go run ./benchmarks/cmd/scalesim
package main

import (
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"text/tabwriter"
)

// Measured per-core figures (benchmarks/RESULTS.md, docs/scaling.md).
const (
	batchEventsPerCore = 140_000 // ingest + routing, 100 events a POST
	deliveriesPerCore  = 310_000 // SSE frames written
	followNsPerByte    = 15.5    // reading the results topic, nothing local to decode
	decodeNsPerEvent   = 1_900   // decoding a result for local subscribers, once per instance
	rssPerSubscriber   = 11 << 10
	eventBytes         = 150 // a result on the wire, envelope included
)

// Assumptions, not measured here: flags.
var (
	coresPerInstance = flag.Float64("cores", 4, "cores per instance")
	budget           = flag.Float64("budget", 0.6, "share of an instance's cores the load may use at its peak")
	maxSubsPer       = flag.Int("max-subs", 100_000, "subscribers one instance may hold (open files, memory)")
	minInstances     = flag.Int("min", 3, "instances at least, so that one can fail or restart")
	brokerEgressMBs  = flag.Float64("broker-egress", 300, "MB/s one broker serves to consumers")
	brokerIngressMBs = flag.Float64("broker-ingress", 100, "MB/s one broker takes in, replication included")
)

// scenario is a load: subscribers over streams, and an event rate.
type scenario struct {
	name        string
	subscribers int
	streams     int
	events      float64 // per second, ingested and routed, in batches
}

func main() {
	flag.Parse()
	scenarios := []scenario{
		{"100k subscribers", 100_000, 10_000, 10_000},
		{"1M subscribers", 1_000_000, 100_000, 10_000},
		{"10M subscribers", 10_000_000, 1_000_000, 10_000},
		{"100k events/s", 10_000, 1_000, 100_000},
		{"1M events/s", 10_000, 1_000, 1_000_000},
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "load\tdesign\tinstances\tpartitions\tbrokers\tfollow cores/instance\tresults read by the fleet\t")
	for _, sc := range scenarios {
		for _, d := range []design{followAll, followOwn} {
			n, load := size(sc, d)
			if n < 0 {
				fmt.Fprintf(w, "%s\t%s\tdoes not fit: following alone takes %.1f cores an instance\t\t\t\t\t\n", sc.name, d, load.follow)
				continue
			}
			fmt.Fprintf(w, "%s\t%s\t%d\t%d\t%d\t%.2f\t%.0f MB/s\t\n", sc.name, d, n, load.partitions, load.brokers, load.follow, load.fleetRead/1e6)
		}
	}
	w.Flush()
}

type design int

const (
	followAll design = iota // design A: every instance reads every result
	followOwn               // design B: an instance reads the partitions of its streams
)

func (d design) String() string {
	if d == followAll {
		return "A: follow all"
	}
	return "B: follow own partitions"
}

// load is one instance's share at a fleet size.
type load struct {
	cores, follow     float64
	partitions        int
	brokers           int
	fleetRead         float64 // bytes/s the brokers serve to the fleet's followers
	subscribersPerOne int
}

// size is the least instances that carry sc under d, or -1.
func size(sc scenario, d design) (int, load) {
	var l load
	for n := *minInstances; n <= 100_000; n = next(n) {
		l = instanceLoad(sc, d, n)
		if l.follow > *coresPerInstance**budget {
			return -1, l
		}
		if l.cores <= *coresPerInstance**budget && l.subscribersPerOne <= *maxSubsPer {
			return n, l
		}
	}
	return -1, l
}

func next(n int) int { return max(n+1, int(float64(n)*1.05)) }

// instanceLoad is an instance's CPU at fleet size n.
func instanceLoad(sc scenario, d design, n int) load {
	resultBytes := sc.events * eventBytes
	perSubs := int(math.Ceil(float64(sc.subscribers) / float64(n)))
	fanOut := float64(sc.subscribers) / float64(sc.streams)
	deliveries := sc.events * fanOut / float64(n)
	watched := watchedShare(sc, n)
	// Routing needs a partition per router's share of the events; design
	// B needs a partition per instance besides.
	routers := int(math.Ceil(sc.events / batchEventsPerCore / (*coresPerInstance * *budget)))
	l := load{subscribersPerOne: perSubs, partitions: max(12, routers)}
	switch d {
	case followAll:
		l.follow = resultBytes * followNsPerByte / 1e9
		l.fleetRead = resultBytes * float64(n)
	case followOwn:
		// Streams are placed by partition: an instance reads its 1/n of
		// the topic (partitions >= instances), and decodes all of it.
		l.follow = resultBytes / float64(n) * followNsPerByte / 1e9
		l.fleetRead = resultBytes
		l.partitions = max(l.partitions, n)
		watched = 1
		// A stream's subscribers share its instances: a stream with more
		// subscribers than one instance holds is read by several.
		if fanOut > float64(*maxSubsPer) {
			l.fleetRead *= math.Ceil(fanOut / float64(*maxSubsPer))
		}
	}
	decodeEvents := sc.events * watched
	if d == followOwn {
		decodeEvents = sc.events / float64(n)
	}
	l.cores = sc.events/batchEventsPerCore/float64(n) + deliveries/deliveriesPerCore + l.follow + decodeEvents*decodeNsPerEvent/1e9
	egress := math.Ceil(l.fleetRead / 1e6 / *brokerEgressMBs)
	ingress := math.Ceil(3 * 2 * resultBytes / 1e6 / *brokerIngressMBs) // events and results, replication 3
	l.brokers = int(max(3, egress, ingress))
	return l
}

// watchedShare is the share of streams an instance holds at least one
// subscriber of, when sc's subscribers are spread over n instances at
// random (a round robin balancer, which knows nothing of streams).
func watchedShare(sc scenario, n int) float64 {
	if n == 1 {
		return 1
	}
	const trials = 2_000
	rng := rand.New(rand.NewPCG(1, uint64(n)))
	fanOut := max(1, sc.subscribers/sc.streams)
	hit := 0
	for range trials {
		// One stream's fanOut subscribers; is instance 0 among theirs?
		for range fanOut {
			if rng.IntN(n) == 0 {
				hit++
				break
			}
		}
	}
	return float64(hit) / trials
}
