package observability

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Metrics are rtstream's own metrics. Labels are bounded sets only (route
// pattern, method, status class, topic, partition, reason): never a stream id,
// key or client address. A nil *Metrics records nothing, which is how the
// benchmark measures the cost of collection.
type Metrics struct {
	httpRequests   *prometheus.CounterVec
	httpDuration   *prometheus.HistogramVec
	httpInFlight   prometheus.Gauge
	publishRecords *prometheus.CounterVec
	publishErrors  *prometheus.CounterVec
	publishTime    *prometheus.HistogramVec
	eventsAccepted prometheus.Counter
	poison         *prometheus.CounterVec
	careful        prometheus.Counter
	audited        *prometheus.CounterVec
	processing     prometheus.Histogram
	ages           *prometheus.HistogramVec
	processed      *prometheus.CounterVec
	lag            *prometheus.GaugeVec
	routerRunning  prometheus.Gauge
	subscribers    *prometheus.GaugeVec
	delivered      prometheus.Counter
	slow           prometheus.Counter
	resumes        *prometheus.CounterVec
	deliveryAge    prometheus.Histogram
	ready          prometheus.Gauge
	idemReplays    prometheus.Counter
	idemErrors     prometheus.Counter
	invalidUTF8    *prometheus.CounterVec
	quota          *quotaMetrics
}

// latencyBuckets span a loopback request (0.25 ms) to a stalled one (10 s).
var latencyBuckets = []float64{.00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// ageBuckets resolve the latency budget of a result: milliseconds apart
// below 20 ms, where the real-time goals are (issue 13).
var ageBuckets = []float64{.0005, .001, .002, .003, .005, .0075, .01, .0125, .015, .02, .03, .05, .075, .1, .15, .25, .5, 1, 2.5, 5, 10}

// The points of the pipeline where AgeAt measures a result's age.
const (
	AtRouter   = "router"   // the router starts processing its event
	AtFollower = "follower" // this instance's results follower read it
	AtSource   = "source"   // a source stream's record was copied
)

// NewMetrics registers the metrics on reg. topics are the topics published
// to, whose series exist from the start.
func NewMetrics(reg prometheus.Registerer, topics ...string) *Metrics {
	f := promauto.With(reg)
	m := &Metrics{}
	m.newHTTP(f)
	m.newKafka(f)
	m.newRouter(f)
	m.newDelivery(f)
	m.newIdempotency(f)
	m.quota = newQuotaMetrics(f, DefaultTopTenants)
	m.audited = f.NewCounterVec(prometheus.CounterOpts{
		Name: "rtstream_audit_events_total", Help: "Audited requests (stream create, put, delete), by action and outcome: ok, refused (4xx), failed (5xx).",
	}, []string{"action", "outcome"})
	// Known label values start at zero, so dashboards and alerts see the
	// series before the first event.
	m.subscribers.WithLabelValues("sse")
	for _, r := range PoisonReasons {
		m.poison.WithLabelValues(r)
	}
	for _, o := range []string{"result", "filtered", "dead_letter"} {
		m.processed.WithLabelValues(o)
	}
	for _, t := range topics {
		m.publishRecords.WithLabelValues(t)
		m.publishErrors.WithLabelValues(t)
	}
	return m
}

// newHTTP registers the metrics of the API: requests, their time, those in flight.
func (m *Metrics) newHTTP(f promauto.Factory) {
	m.httpRequests = f.NewCounterVec(prometheus.CounterOpts{
		Name: "rtstream_http_requests_total", Help: "HTTP requests answered, by route pattern, method and status class.",
	}, []string{"route", "method", "code"})
	m.httpDuration = f.NewHistogramVec(prometheus.HistogramOpts{
		Name: "rtstream_http_request_duration_seconds", Help: "Time to answer HTTP requests (for streams: their whole life), by route pattern and method.",
		Buckets: latencyBuckets,
	}, []string{"route", "method"})
	m.httpInFlight = f.NewGauge(prometheus.GaugeOpts{
		Name: "rtstream_http_requests_in_flight", Help: "HTTP requests being served, streams included.",
	})
}

// newKafka registers the metrics of publishing to Kafka and the records accepted.
func (m *Metrics) newKafka(f promauto.Factory) {
	m.publishRecords = f.NewCounterVec(prometheus.CounterOpts{
		Name: "rtstream_kafka_publish_total", Help: "Records Kafka acknowledged, by topic.",
	}, []string{"topic"})
	m.publishErrors = f.NewCounterVec(prometheus.CounterOpts{
		Name: "rtstream_kafka_publish_errors_total", Help: "Publish calls that failed or timed out, by topic.",
	}, []string{"topic"})
	m.publishTime = f.NewHistogramVec(prometheus.HistogramOpts{
		Name: "rtstream_kafka_publish_duration_seconds", Help: "Time from handing records to the producer to Kafka's acknowledgement, by topic.",
		Buckets: latencyBuckets,
	}, []string{"topic"})
	m.eventsAccepted = f.NewCounter(prometheus.CounterOpts{
		Name: "rtstream_events_accepted_total", Help: "Events acknowledged to clients (202) after Kafka acknowledged them.",
	})
}

// newRouter registers the metrics of the router: processing, poisoned records,
// crash marks, lag, whether it runs. The readiness gauge is here too because
// the pipeline's readiness loop sets it in the same breath as routerRunning.
func (m *Metrics) newRouter(f promauto.Factory) {
	m.poison = f.NewCounterVec(prometheus.CounterOpts{
		Name: "rtstream_poison_messages_total", Help: "Records sent to the poison topic, by reason.",
	}, []string{"reason"})
	m.careful = f.NewCounter(prometheus.CounterOpts{
		Name: "rtstream_router_careful_records_total", Help: "Records the router evaluated one by one after writing a crash mark, because a process had left their partition without stopping cleanly.",
	})
	m.processing = f.NewHistogram(prometheus.HistogramOpts{
		Name: "rtstream_processing_duration_seconds", Help: "Time the router takes to turn one events record into results, publishing excluded.",
		Buckets: latencyBuckets,
	})
	m.processed = f.NewCounterVec(prometheus.CounterOpts{
		Name: "rtstream_processed_events_total", Help: "Events the router processed, by outcome: result (made a result), filtered (dropped by the stream's filter), dead_letter (the processor failed on its data; sent to the poison topic).",
	}, []string{"outcome"})
	m.lag = f.NewGaugeVec(prometheus.GaugeOpts{
		Name: "rtstream_consumer_lag", Help: "Records not yet consumed, by consumer group (or follower), topic and partition.",
	}, []string{"group", "topic", "partition"})
	m.routerRunning = f.NewGauge(prometheus.GaugeOpts{
		Name: "rtstream_router_running", Help: "1 while the processing router runs.",
	})
	m.ready = f.NewGauge(prometheus.GaugeOpts{
		Name: "rtstream_ready", Help: "1 while every readiness check passes.",
	})
}

// newDelivery registers the metrics of the fan-out: subscribers, deliveries, resumes.
func (m *Metrics) newDelivery(f promauto.Factory) {
	m.subscribers = f.NewGaugeVec(prometheus.GaugeOpts{
		Name: "rtstream_subscribers", Help: "Connected result subscribers, by transport.",
	}, []string{"transport"})
	m.delivered = f.NewCounter(prometheus.CounterOpts{
		Name: "rtstream_results_delivered_total", Help: "Results written to subscribers.",
	})
	m.slow = f.NewCounter(prometheus.CounterOpts{
		Name: "rtstream_slow_client_disconnects_total", Help: "Subscribers disconnected because they did not keep up.",
	})
	m.resumes = f.NewCounterVec(prometheus.CounterOpts{
		Name: "rtstream_resumes_total", Help: "Subscriptions resumed after a cursor or from the earliest result, by where the replay started: history (memory) or kafka.",
	}, []string{"source"})
	m.deliveryAge = f.NewHistogram(prometheus.HistogramOpts{
		Name: "rtstream_result_delivery_age_seconds", Help: "Age of a result when written to a subscriber: now minus the event's received_at.",
		Buckets: ageBuckets,
	})
	m.ages = f.NewHistogramVec(prometheus.HistogramOpts{
		Name: "rtstream_result_age_seconds",
		Help: "Age of an event (now minus received_at) where it reaches a point of the pipeline: router (processing starts), follower (this instance read its result). " +
			"With rtstream_kafka_publish_duration_seconds{topic=~\".*events\"} and rtstream_result_delivery_age_seconds, the latency budget per hop.",
		Buckets: ageBuckets,
	}, []string{"at"})
	for _, at := range []string{AtRouter, AtFollower} {
		m.ages.WithLabelValues(at)
	}
	m.invalidUTF8 = f.NewCounterVec(prometheus.CounterOpts{
		Name: "rtstream_invalid_utf8_replaced_total",
		Help: "Events or results read from Kafka whose data held bytes that are not UTF-8, sent on with U+FFFD in their place, by where: router (events records), follower (results records), source (source topics' records).",
	}, []string{"at"})
	for _, at := range []string{AtRouter, AtFollower, AtSource} {
		m.invalidUTF8.WithLabelValues(at)
	}
}

// InvalidUTF8 counts n events or results read at at whose bytes that are
// not UTF-8 were replaced.
func (m *Metrics) InvalidUTF8(at string, n int) {
	if m != nil && n > 0 {
		m.invalidUTF8.WithLabelValues(at).Add(float64(n))
	}
}

// AgeAt records the age of an event received at receivedAt as it reaches
// the point at (AtRouter, AtFollower).
func (m *Metrics) AgeAt(at string, receivedAt time.Time) {
	if m != nil && !receivedAt.IsZero() {
		m.ages.WithLabelValues(at).Observe(time.Since(receivedAt).Seconds())
	}
}

// Audited counts one audited request by action and outcome (ok, refused,
// failed).
func (m *Metrics) Audited(action, outcome string) {
	if m != nil {
		m.audited.WithLabelValues(action, outcome).Inc()
	}
}

// newIdempotency registers the metrics of the Idempotency-Key store.
func (m *Metrics) newIdempotency(f promauto.Factory) {
	m.idemReplays = f.NewCounter(prometheus.CounterOpts{
		Name: "rtstream_idempotent_replays_total", Help: "Sends answered from the stored answer of an earlier request with the same Idempotency-Key, adding no events.",
	})
	m.idemErrors = f.NewCounter(prometheus.CounterOpts{
		Name: "rtstream_idempotency_store_errors_total", Help: "Idempotency store calls that failed; a failed claim answers 503.",
	})
}

// PoisonReasons are the values of the poison reason label.
// "crashed" is a record whose events were dead-lettered without evaluation
// because processing it killed the process twice (router's crash marks).
var PoisonReasons = []string{"unreadable", "panic", "other", "crashed"}

func codeClass(status int) string {
	switch {
	case status >= 500:
		return "5xx"
	case status >= 400:
		return "4xx"
	case status >= 300:
		return "3xx"
	case status >= 200:
		return "2xx"
	}
	return "1xx"
}

// HTTPStart counts a request in flight; call the returned func when it ends.
func (m *Metrics) HTTPStart() func() {
	if m == nil {
		return func() {}
	}
	m.httpInFlight.Inc()
	return m.httpInFlight.Dec
}

// HTTPDone records an answered request; traceID, when the request was traced
// and sampled, becomes the duration's exemplar.
func (m *Metrics) HTTPDone(route, method string, status int, d time.Duration, traceID string) {
	if m == nil {
		return
	}
	if route == "" {
		route = "unmatched"
	}
	m.httpRequests.WithLabelValues(route, method, codeClass(status)).Inc()
	observe(m.httpDuration.WithLabelValues(route, method), d.Seconds(), traceID)
}

// Published records one publish call of n records to topic.
func (m *Metrics) Published(topic string, n int, d time.Duration, err error) {
	if m == nil {
		return
	}
	if err != nil {
		m.publishErrors.WithLabelValues(topic).Inc()
		return
	}
	m.publishRecords.WithLabelValues(topic).Add(float64(n))
	m.publishTime.WithLabelValues(topic).Observe(d.Seconds())
}

// EventsAccepted counts events acknowledged to a client.
func (m *Metrics) EventsAccepted(n int) {
	if m != nil {
		m.eventsAccepted.Add(float64(n))
	}
}

// Poisoned counts a record sent to the poison topic; reason is one of
// PoisonReasons.
func (m *Metrics) Poisoned(reason string) {
	if m != nil {
		m.poison.WithLabelValues(reason).Inc()
	}
}

// CarefulRecord counts a record evaluated after a crash mark was written.
func (m *Metrics) CarefulRecord() {
	if m != nil {
		m.careful.Inc()
	}
}

// Processed records the router's time for one record.
func (m *Metrics) Processed(d time.Duration) {
	if m != nil {
		m.processing.Observe(d.Seconds())
	}
}

// ProcessedEvents counts the outcomes of one record's events. Dead letters
// are counted here, not in the poison counter: they are the client's data not
// fitting its own expressions, not a fault of the pipeline to alert on.
func (m *Metrics) ProcessedEvents(results, filtered, deadLetters int) {
	if m == nil {
		return
	}
	m.processed.WithLabelValues("result").Add(float64(results))
	m.processed.WithLabelValues("filtered").Add(float64(filtered))
	m.processed.WithLabelValues("dead_letter").Add(float64(deadLetters))
}

// Lag sets a partition's consumer lag.
func (m *Metrics) Lag(group, topic string, partition int32, lag int64) {
	if m != nil {
		m.lag.WithLabelValues(group, topic, strconv.Itoa(int(partition))).Set(float64(lag))
	}
}

// RouterRunning sets whether the router runs.
func (m *Metrics) RouterRunning(running bool) {
	if m != nil {
		m.routerRunning.Set(b2f(running))
	}
}

// Ready sets whether the instance is ready.
func (m *Metrics) Ready(ready bool) {
	if m != nil {
		m.ready.Set(b2f(ready))
	}
}

// Subscribed counts a subscriber of transport in; call the returned func when
// it leaves.
func (m *Metrics) Subscribed(transport string) func() {
	if m == nil {
		return func() {}
	}
	g := m.subscribers.WithLabelValues(transport)
	g.Inc()
	return g.Dec
}

// Delivered records a result written to a subscriber, received at
// receivedAt; traceID, when its send was traced and sampled, becomes the
// age's exemplar, so that a dashboard goes from a slow result to its trace.
func (m *Metrics) Delivered(now time.Time, receivedAt time.Time, traceID string) {
	if m != nil {
		m.delivered.Inc()
		observe(m.deliveryAge, now.Sub(receivedAt).Seconds(), traceID)
	}
}

// observe records v in h, with traceID as its exemplar when there is one.
// Exemplars are exposed in the OpenMetrics format only, which Prometheus
// asks for.
func observe(h prometheus.Observer, v float64, traceID string) {
	if traceID != "" {
		if eo, ok := h.(prometheus.ExemplarObserver); ok {
			eo.ObserveWithExemplar(v, prometheus.Labels{"trace_id": traceID})
			return
		}
	}
	h.Observe(v)
}

// Resumed counts a resumed subscription by where its replay started.
func (m *Metrics) Resumed(source string) {
	if m != nil {
		m.resumes.WithLabelValues(source).Inc()
	}
}

// SlowDisconnect counts a subscriber dropped for not keeping up.
func (m *Metrics) SlowDisconnect() {
	if m != nil {
		m.slow.Inc()
	}
}

// IdempotentReplay counts a send answered from a stored answer.
func (m *Metrics) IdempotentReplay() {
	if m != nil {
		m.idemReplays.Inc()
	}
}

// IdempotencyStoreError counts a failed call to the idempotency store.
func (m *Metrics) IdempotencyStoreError() {
	if m != nil {
		m.idemErrors.Inc()
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
