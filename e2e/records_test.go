package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"net/http"
	"os"
	"os/exec"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"github.com/rtstream/rtstream/internal/otlpsink"
	"github.com/rtstream/rtstream/internal/testenv"
)

// docs/records.md is the contract of rtstream's Kafka records for other
// consumers. Its tables are the test's expectations: the test parses them
// rather than repeating them, so that the document is what is checked, and
// a record that disagrees with it (a field or header missing, of another
// type, or not documented) fails the test whichever of the two changed.

const recordsDocPath = "../docs/records.md"

// recordKinds are the kinds docs/records.md documents. Every kind has a
// header table; all but poisoned (whose value is whatever was consumed) a
// value table and an example.
var recordKinds = []string{"events", "results", "dead-letter", "poisoned", "streams", "marks"}

// recordsDoc is what the tables of docs/records.md say.
type recordsDoc struct {
	topics   map[string]topicRule // by name, with "<prefix>"
	values   map[string]valueSchema
	headers  map[string]headerRules
	examples map[string]string
}

// topicRule is a row of the topics table.
type topicRule struct {
	partitions string // the cell: `TOPIC_PARTITIONS`, as `<topic>`, or a number
	cleanup    string // cleanup.policy
	byKey      bool   // the partition is the key's number, not its hash
}

// valueSchema holds a value table's rows by field path.
type valueSchema map[string]fieldRule

type fieldRule struct {
	typ    string
	always bool
}

// headerRules is a header table.
type headerRules struct {
	rules  map[string]headerRule
	others bool // a "*" row: headers not listed may be present
}

type headerRule struct {
	value  string // the cell as written
	always bool
}

var (
	docMarker = regexp.MustCompile(`^<!-- records:([a-z]+)(?: ([a-z-]+))? -->$`)
	codeSpan  = regexp.MustCompile("`([^`]*)`")
	// a W3C traceparent of version 00.
	traceparentRE = regexp.MustCompile(`^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$`)
	ulidRE        = regexp.MustCompile(`^[0-9A-HJKMNP-TV-Z]{26}$`)
)

var fieldTypes = []string{"string", "integer", "boolean", "timestamp", "object", "array", "map", "json"}

// code is the text of a cell that is one code span.
func code(cell string) (string, bool) {
	if m := codeSpan.FindStringSubmatch(cell); m != nil && m[0] == cell {
		return m[1], true
	}
	return "", false
}

// parseRecordsDoc reads the tables and examples of docs/records.md,
// failing the test on any that is not well-formed.
func parseRecordsDoc(t *testing.T) *recordsDoc {
	t.Helper()
	data, err := os.ReadFile(recordsDocPath)
	if err != nil {
		t.Fatalf("the records contract: %v", err)
	}
	doc := &recordsDoc{topics: map[string]topicRule{}, values: map[string]valueSchema{},
		headers: map[string]headerRules{}, examples: map[string]string{}}
	lines := strings.Split(string(data), "\n")
	for i := 0; i < len(lines); i++ {
		m := docMarker.FindStringSubmatch(strings.TrimSpace(lines[i]))
		if m == nil {
			continue
		}
		what, kind := m[1], m[2]
		j := i + 1
		for j < len(lines) && strings.TrimSpace(lines[j]) == "" {
			j++
		}
		where := fmt.Sprintf("%s:%d (%s %s)", recordsDocPath, i+1, what, kind)
		if what == "example" {
			if j >= len(lines) || strings.TrimSpace(lines[j]) != "```json" {
				t.Fatalf("%s: no ```json block after the marker", where)
			}
			var block []string
			for j++; j < len(lines) && strings.TrimSpace(lines[j]) != "```"; j++ {
				block = append(block, lines[j])
			}
			doc.examples[kind] = strings.Join(block, "\n")
			i = j
			continue
		}
		var rows [][]string
		for ; j < len(lines) && strings.HasPrefix(strings.TrimSpace(lines[j]), "|"); j++ {
			line := strings.Trim(strings.TrimSpace(lines[j]), "|")
			cells := strings.Split(line, "|")
			for k := range cells {
				cells[k] = strings.TrimSpace(cells[k])
			}
			rows = append(rows, cells)
		}
		i = j
		if len(rows) < 3 {
			t.Fatalf("%s: no table after the marker", where)
		}
		head, body := strings.Join(rows[0], "|"), rows[2:]
		switch what {
		case "topics":
			doc.parseTopics(t, where, head, body)
		case "value":
			doc.parseValue(t, where, kind, head, body)
		case "headers":
			doc.parseHeaders(t, where, kind, head, body)
		default:
			t.Fatalf("%s: unknown marker", where)
		}
	}
	return doc
}

func (d *recordsDoc) parseTopics(t *testing.T, where, head string, rows [][]string) {
	t.Helper()
	if head != "topic|partitions|cleanup.policy|key|partition" {
		t.Fatalf("%s: columns %q", where, head)
	}
	for _, r := range rows {
		name, ok1 := code(r[0])
		cleanup, ok2 := code(r[2])
		part, ok3 := code(r[4])
		if !ok1 || !ok2 || !ok3 || (part != "hash(key)" && part != "key") {
			t.Fatalf("%s: row %q: topic, cleanup.policy and partition (`hash(key)` or `key`) must be code", where, r)
		}
		d.topics[name] = topicRule{partitions: r[1], cleanup: cleanup, byKey: part == "key"}
	}
}

func (d *recordsDoc) parseValue(t *testing.T, where, kind, head string, rows [][]string) {
	t.Helper()
	if head != "field|type|presence|meaning" {
		t.Fatalf("%s: columns %q", where, head)
	}
	s := valueSchema{}
	for _, r := range rows {
		path, ok := code(r[0])
		if !ok || !slices.Contains(fieldTypes, r[1]) || (r[2] != "always" && r[2] != "optional") || r[3] == "" {
			t.Fatalf("%s: row %q: want a `field`, a type of %v, always or optional, and a meaning", where, r, fieldTypes)
		}
		if _, dup := s[path]; dup {
			t.Fatalf("%s: %s twice", where, path)
		}
		if p := parentPath(path); p != "" {
			if _, ok := s[p]; !ok {
				t.Fatalf("%s: %s comes before its parent %s", where, path, p)
			}
		}
		s[path] = fieldRule{typ: r[1], always: r[2] == "always"}
	}
	for path, r := range s {
		if r.typ == "array" {
			if _, ok := s[path+"[]"]; !ok {
				t.Fatalf("%s: array %s has no %s[] row for its items", where, path, path)
			}
		}
	}
	d.values[kind] = s
}

func (d *recordsDoc) parseHeaders(t *testing.T, where, kind, head string, rows [][]string) {
	t.Helper()
	if head != "header|value|presence|meaning" {
		t.Fatalf("%s: columns %q", where, head)
	}
	h := headerRules{rules: map[string]headerRule{}}
	for _, r := range rows {
		name, ok := code(r[0])
		if !ok {
			t.Fatalf("%s: row %q: the header must be code", where, r)
		}
		if name == "*" {
			h.others = true
			continue
		}
		if r[1] == "" || r[2] == "" || r[3] == "" {
			t.Fatalf("%s: row %q: value, presence and meaning are required", where, r)
		}
		h.rules[name] = headerRule{value: r[1], always: r[2] == "always"}
	}
	d.headers[kind] = h
}

// parentPath is the path of the object or array a field is in ("" for the
// value itself): events[].event_id is in events[], an item of events.
func parentPath(path string) string {
	if p, ok := strings.CutSuffix(path, "[]"); ok {
		return p
	}
	if i := strings.LastIndex(path, "."); i >= 0 {
		return path[:i]
	}
	return ""
}

// decodeValue decodes one JSON value keeping numbers as written.
func decodeValue(data []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("more than one JSON value")
	}
	return v, nil
}

// check returns how value disagrees with the table.
func (s valueSchema) check(value []byte) []string {
	v, err := decodeValue(value)
	if err != nil {
		return []string{fmt.Sprintf("value is not JSON: %v", err)}
	}
	m, ok := v.(map[string]any)
	if !ok {
		return []string{"value is not a JSON object"}
	}
	var errs []string
	s.checkObject("", m, &errs)
	return errs
}

func (s valueSchema) checkObject(path string, m map[string]any, errs *[]string) {
	for p, r := range s {
		if r.always && !strings.HasSuffix(p, "[]") && parentPath(p) == path {
			if _, ok := m[p[len(path)+len(dot(path)):]]; !ok {
				*errs = append(*errs, fmt.Sprintf("%s: missing (documented always)", p))
			}
		}
	}
	for k, v := range m {
		p := path + dot(path) + k
		if _, ok := s[p]; !ok {
			*errs = append(*errs, fmt.Sprintf("%s: not documented", p))
			continue
		}
		s.checkValue(p, v, errs)
	}
}

func dot(path string) string {
	if path == "" {
		return ""
	}
	return "."
}

func (s valueSchema) checkValue(path string, v any, errs *[]string) {
	typ := s[path].typ
	ok := true
	switch typ {
	case "string":
		_, ok = v.(string)
	case "integer":
		n, isNum := v.(json.Number)
		_, err := n.Int64()
		ok = isNum && err == nil
	case "boolean":
		_, ok = v.(bool)
	case "timestamp":
		str, isStr := v.(string)
		_, err := time.Parse(time.RFC3339Nano, str)
		ok = isStr && err == nil && strings.HasSuffix(str, "Z")
	case "object":
		var m map[string]any
		if m, ok = v.(map[string]any); ok {
			s.checkObject(path, m, errs)
		}
	case "array":
		var items []any
		if items, ok = v.([]any); ok {
			for _, item := range items {
				s.checkValue(path+"[]", item, errs)
			}
		}
	case "map":
		_, ok = v.(map[string]any)
	case "json":
	}
	if !ok {
		*errs = append(*errs, fmt.Sprintf("%s: %s is not of the documented type %s", path, short(v), typ))
	}
}

func short(v any) string {
	b, _ := json.Marshal(v)
	if len(b) > 80 {
		b = append(b[:80], "..."...)
	}
	return string(b)
}

// kcatRecord is a record as kcat -J prints it.
type kcatRecord struct {
	Topic     string    `json:"topic"`
	Partition int32     `json:"partition"`
	Offset    int64     `json:"offset"`
	Key       *string   `json:"key"`
	Payload   *string   `json:"payload"`
	Headers   []*string `json:"headers"` // name, value, name, value...
}

func (r kcatRecord) String() string { return fmt.Sprintf("%s/%d@%d", r.Topic, r.Partition, r.Offset) }

func (r kcatRecord) key() string {
	if r.Key == nil {
		return ""
	}
	return *r.Key
}

// header returns the value of the header name.
func (r kcatRecord) header(name string) (string, bool) {
	for i := 0; i+1 < len(r.Headers); i += 2 {
		if r.Headers[i] != nil && *r.Headers[i] == name {
			if r.Headers[i+1] == nil {
				return "", true
			}
			return *r.Headers[i+1], true
		}
	}
	return "", false
}

// check returns how the record's headers disagree with the table.
func (h headerRules) check(r kcatRecord, prefix string) []string {
	var errs []string
	if len(r.Headers)%2 != 0 {
		return []string{fmt.Sprintf("kcat printed an odd headers array %v", r.Headers)}
	}
	seen := map[string]bool{}
	for i := 0; i < len(r.Headers); i += 2 {
		if r.Headers[i] == nil {
			errs = append(errs, "a header without a name")
			continue
		}
		name := *r.Headers[i]
		if seen[name] {
			errs = append(errs, fmt.Sprintf("header %s: more than once", name))
		}
		seen[name] = true
		value := ""
		if r.Headers[i+1] != nil {
			value = *r.Headers[i+1]
		}
		rule, ok := h.rules[name]
		if !ok {
			if !h.others {
				errs = append(errs, fmt.Sprintf("header %s: not documented", name))
			}
			continue
		}
		if lit, isCode := code(rule.value); isCode {
			if want := strings.ReplaceAll(lit, "<prefix>", prefix); value != want {
				errs = append(errs, fmt.Sprintf("header %s: %q, documented %q", name, value, want))
			}
			continue
		}
		switch {
		case rule.value == "the record's key" && value != r.key():
			errs = append(errs, fmt.Sprintf("header %s: %q, documented as the key %q", name, value, r.key()))
		case rule.value == "a W3C traceparent" && !traceparentRE.MatchString(value):
			errs = append(errs, fmt.Sprintf("header %s: %q is not a W3C traceparent", name, value))
		case rule.value == "a ULID" && !ulidRE.MatchString(value):
			errs = append(errs, fmt.Sprintf("header %s: %q is not a ULID", name, value))
		}
	}
	for name, rule := range h.rules {
		if rule.always && !seen[name] {
			errs = append(errs, fmt.Sprintf("header %s: missing (documented always)", name))
		}
	}
	return errs
}

// hashPartition is the partition of key among n as docs/records.md says
// rtstream's producers place it: |int32(FNV-1a 32(key)) rem n|.
func hashPartition(key string, n int32) int32 {
	h := fnv.New32a()
	h.Write([]byte(key))
	p := int32(h.Sum32()) % n
	if p < 0 {
		p = -p
	}
	return p
}

// TestRecordsDocIsWellFormed: the contract's tables parse, cover every
// record kind and topic, and its examples satisfy its own value tables. It
// needs nothing but the document, so a broken table fails everywhere.
func TestRecordsDocIsWellFormed(t *testing.T) {
	doc := parseRecordsDoc(t)
	for _, kind := range recordKinds {
		if _, ok := doc.headers[kind]; !ok {
			t.Errorf("no header table for %s records", kind)
		}
		if kind == "poisoned" {
			continue
		}
		s, ok := doc.values[kind]
		if !ok {
			t.Errorf("no value table for %s records", kind)
			continue
		}
		example, ok := doc.examples[kind]
		if !ok {
			t.Errorf("no example of a %s record", kind)
			continue
		}
		for _, e := range s.check([]byte(example)) {
			t.Errorf("the example of a %s record: %s", kind, e)
		}
		if h := doc.headers[kind].rules["rtstream-format"]; !h.always || h.value != "`1`" {
			t.Errorf("%s records: the version header is not documented as always `1`: %+v", kind, h)
		}
	}
	for _, suffix := range []string{"events", "results", "poison", "streams", "marks"} {
		if _, ok := doc.topics["<prefix>."+suffix]; !ok {
			t.Errorf("the topics table has no <prefix>.%s", suffix)
		}
	}
}

// TestRecordsMatchTheDoc runs a server on a real Kafka, with tracing on, and
// makes every kind of record: a traced batch and a single event (events and
// results), a stream whose map fails on one event (a dead letter), a foreign
// record on the events topic that the router cannot read (a poisoned record),
// a deleted stream (a tombstone) and the router's crash marks. It then reads
// every topic with kcat, as a consumer that is not rtstream would, and checks
// each record against docs/records.md: its headers, its value's fields and
// their types, its key and its partition, and what the document says ties
// records together (a result's source, a dead letter's source, tombstones).
func TestRecordsMatchTheDoc(t *testing.T) {
	t.Parallel()
	doc := parseRecordsDoc(t)
	brokers := testenv.KafkaBrokers(t)
	kcat := testenv.Command(t, "kcat", "scripts/kcat.sh install (Debian's kcat)")
	// Tracing on, so that the trace headers are checked too; the spans
	// are only counted.
	_, endpoint, stopSink, err := otlpsink.Start(false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stopSink)
	prefix := newPrefix(t, "records")
	env := kafkaEnv(brokers, prefix)
	env["OTEL_EXPORTER_OTLP_ENDPOINT"] = endpoint
	env["OTEL_BSP_SCHEDULE_DELAY"] = "100"
	s := startServer(t, "records", env)
	partitions := checkTopics(t, doc, brokers, prefix, s.vars["TOPIC_PARTITIONS"])

	// Events and results: a traced batch, then a single event.
	plain := createStream(t, s.Base+"/v1/streams", "records")
	feed := openSSE(t, s.Base+"/v1/streams/"+plain.ID+"/results")
	traceID := randomHex(t, 16)
	const tracestate, baggage = "rtstream=records", "test=records"
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	rep, err := request(ctx, http.MethodPost, s.Base+"/v1/streams/"+plain.ID+"/events", "application/json",
		[]byte(`[{"n":1},{"n":2},{"n":3}]`), http.Header{
			"Traceparent": {"00-" + traceID + "-" + randomHex(t, 8) + "-01"},
			"Tracestate":  {tracestate}, "Baggage": {baggage}})
	if err != nil || rep.Status != http.StatusAccepted {
		t.Fatalf("traced send: %v %v, want 202", rep, err)
	}
	var batch accepted
	decodeJSON(t, "traced send", rep.Body, &batch)
	single := send(t, s.Base+"/v1/streams/"+plain.ID+"/events", "application/json", []byte(`{"n":4}`), 1)
	checkResults(t, plain.ID, feed.awaitResults(t, 4, resultTimeout), append(slices.Clone(batch.EventIDs), single...), nil)

	// A dead letter: the map fails on the second event only.
	proc := createProcessed(t, s.Base, "", `{"double": data.n * 2}`)
	procFeed := openSSE(t, s.Base+"/v1/streams/"+proc.ID+"/results")
	procIDs := send(t, s.Base+"/v1/streams/"+proc.ID+"/events", "application/json", []byte(`[{"n":1},{"n":"x"}]`), 2)
	checkResults(t, proc.ID, procFeed.awaitResults(t, 1, resultTimeout), procIDs[:1], []json.RawMessage{[]byte(`{"double":2}`)})
	if dls := awaitDeadLetters(t, s.Base, proc.ID, 1); len(dls) != 1 || dls[0].EventID != procIDs[1] {
		t.Fatalf("dead letters of %s: %+v, want one of event %s", proc.ID, dls, procIDs[1])
	} else {
		t.Logf("dead letter reason: %s", dls[0].Reason)
	}

	// A poisoned record: another writer puts something that is not an
	// events record on the stream's partition of the events topic, as the
	// document tells such writers to place their records.
	foreign := createStream(t, s.Base+"/v1/streams", "foreign")
	const foreignValue = "not an events record"
	kcatProduce(t, kcat, brokers, prefix+".events", hashPartition(foreign.ID, partitions[prefix+".events"]), foreign.ID, foreignValue)
	if dls := awaitDeadLetters(t, s.Base, foreign.ID, 1); len(dls) != 1 {
		t.Fatalf("dead letters of %s: %+v, want the poisoned record", foreign.ID, dls)
	}

	// A tombstone.
	gone := createStream(t, s.Base+"/v1/streams", "gone")
	if rep := call(t, http.MethodDelete, s.Base+"/v1/streams/"+gone.ID, "", nil); rep.Status != http.StatusNoContent {
		t.Fatalf("DELETE %s: %s, want 204", gone.ID, rep)
	}

	c := recordsCheck{t: t, doc: doc, prefix: prefix, partitions: partitions, events: map[position]eventsValue{}}
	c.eventsTopic(readTopic(t, kcat, brokers, prefix+".events"), foreign.ID)
	c.resultsTopic(readTopic(t, kcat, brokers, prefix+".results"))
	c.poisonTopic(readTopic(t, kcat, brokers, prefix+".poison"), foreign.ID, foreignValue)
	c.streamsTopic(readTopic(t, kcat, brokers, prefix+".streams"))
	c.marksTopic(readTopic(t, kcat, brokers, prefix+".marks"))

	// What the scenario must have made, as the document describes it.
	if got := c.eventIDs[plain.ID]; !reflect.DeepEqual(got, [][]string{batch.EventIDs, single}) {
		t.Errorf("events records of %s hold %v, want one record per request: %v then %v", plain.ID, got, batch.EventIDs, single)
	}
	if got := c.resultIDs[plain.ID]; !slices.Equal(got, append(slices.Clone(batch.EventIDs), single...)) {
		t.Errorf("results records of %s hold %v (redeliveries dropped), want %v and %v", plain.ID, got, batch.EventIDs, single)
	}
	if got := c.resultIDs[proc.ID]; !slices.Equal(got, procIDs[:1]) {
		t.Errorf("results records of %s hold %v, want only %s: the failed event makes no result", proc.ID, got, procIDs[0])
	}
	if got := c.deadIDs[proc.ID]; len(got) == 0 || slices.ContainsFunc(got, func(id string) bool { return id != procIDs[1] }) {
		t.Errorf("dead letters of %s: %v, want event %s (once, or repeated by a redelivery)", proc.ID, got, procIDs[1])
	}
	if c.poisoned == 0 {
		t.Errorf("no poisoned record of %s", foreign.ID)
	}
	for _, id := range []string{plain.ID, proc.ID, foreign.ID} {
		if h := c.registry[id]; len(h) == 0 || !h[len(h)-1] {
			t.Errorf("registry records of %s: %v, want a definition last", id, h)
		}
	}
	if h := c.registry[gone.ID]; len(h) != 2 || !h[0] || h[1] {
		t.Errorf("registry records of %s: %v (true: a definition, false: a tombstone), want a definition then a tombstone", gone.ID, h)
	}
	if c.marks == 0 {
		t.Errorf("no crash mark in %s.marks", prefix)
	}
	// The traced send's records carry its trace, as the headers table says.
	for _, r := range c.traced {
		if tp, _ := r.header("traceparent"); !strings.HasPrefix(tp, "00-"+traceID+"-") {
			t.Errorf("%s (of the traced send): traceparent %q, want trace %s", r, tp, traceID)
		}
		if ts, _ := r.header("tracestate"); ts != tracestate {
			t.Errorf("%s (of the traced send): tracestate %q, want %q", r, ts, tracestate)
		}
		if b, _ := r.header("baggage"); b != baggage {
			t.Errorf("%s (of the traced send): baggage %q, want %q", r, b, baggage)
		}
	}
	// Its events record and its results record (repeated if redelivered).
	if len(c.traced) < 2 {
		t.Errorf("%d records of the traced send, want its events and results records", len(c.traced))
	}
}

// checkTopics checks each topic's partitions and cleanup policy against
// the topics table and returns the partitions of each.
func checkTopics(t *testing.T, doc *recordsDoc, brokers, prefix, configured string) map[string]int32 {
	t.Helper()
	cfg := sarama.NewConfig()
	cfg.Version = sarama.V3_6_0_0
	admin, err := sarama.NewClusterAdmin(strings.Split(brokers, ","), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	names := map[string]string{} // real name → documented name
	var real []string
	for name := range doc.topics {
		n := strings.ReplaceAll(name, "<prefix>", prefix)
		names[n] = name
		real = append(real, n)
	}
	md, err := admin.DescribeTopics(real)
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]int32{}
	for _, m := range md {
		if m.Err != sarama.ErrNoError {
			t.Fatalf("topic %s: %v", m.Name, m.Err)
		}
		counts[m.Name] = int32(len(m.Partitions))
	}
	for name, documented := range names {
		rule := doc.topics[documented]
		var want int64
		switch {
		case strings.Contains(rule.partitions, "`TOPIC_PARTITIONS`"):
			want, _ = strconv.ParseInt(configured, 10, 32)
		case strings.HasPrefix(rule.partitions, "as "):
			m := codeSpan.FindStringSubmatch(rule.partitions)
			want = int64(counts[strings.ReplaceAll(m[1], "<prefix>", prefix)])
		default:
			lit, _ := code(rule.partitions)
			want, _ = strconv.ParseInt(lit, 10, 32)
		}
		if int64(counts[name]) != want || want == 0 {
			t.Errorf("topic %s: %d partitions, documented %s (%d)", name, counts[name], rule.partitions, want)
		}
		entries, err := admin.DescribeConfig(sarama.ConfigResource{Type: sarama.TopicResource, Name: name, ConfigNames: []string{"cleanup.policy"}})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			if e.Name == "cleanup.policy" && e.Value != rule.cleanup {
				t.Errorf("topic %s: cleanup.policy %s, documented %s", name, e.Value, rule.cleanup)
			}
		}
	}
	return counts
}

// readTopic is every record of topic now, as kcat -J prints them.
func readTopic(t *testing.T, kcat, brokers, topic string) []kcatRecord {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, kcat, "-C", "-q", "-b", brokers, "-t", topic, "-o", "beginning", "-e", "-J")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("kcat reading %s: %v\n%s", topic, err, stderr.Bytes())
	}
	var records []kcatRecord
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var r kcatRecord
		if err := dec.Decode(&r); err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("kcat's output for %s is not a sequence of JSON records: %v", topic, err)
		}
		records = append(records, r)
	}
	t.Logf("%s: %d records", topic, len(records))
	return records
}

// kcatProduce writes one record with kcat, as another writer would.
func kcatProduce(t *testing.T, kcat, brokers, topic string, partition int32, key, value string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, kcat, "-P", "-q", "-b", brokers, "-t", topic,
		"-p", strconv.Itoa(int(partition)), "-k", key, "-H", "stream_id="+key)
	cmd.Stdin = strings.NewReader(value + "\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("kcat writing to %s: %v\n%s", topic, err, out)
	}
}

type position struct {
	partition int32
	offset    int64
}

// The parts of the values the cross-record checks use.
type (
	eventsValue struct {
		StreamID string      `json:"stream_id"`
		Events   []eventItem `json:"events"`
	}
	eventItem struct {
		EventID string          `json:"event_id"`
		Data    json.RawMessage `json:"data"`
	}
	sourced struct {
		Source struct {
			Partition int32 `json:"partition"`
			Offset    int64 `json:"offset"`
		} `json:"source"`
	}
	resultsValue struct {
		StreamID string `json:"stream_id"`
		sourced
		Results []struct {
			StreamID string `json:"stream_id"`
			EventID  string `json:"event_id"`
		} `json:"results"`
	}
	deadLetterValue struct {
		StreamID string          `json:"stream_id"`
		EventID  string          `json:"event_id"`
		Data     json.RawMessage `json:"data"`
		sourced
	}
)

// recordsCheck checks the records of each topic and gathers what the test
// checks across them.
type recordsCheck struct {
	t          *testing.T
	doc        *recordsDoc
	prefix     string
	partitions map[string]int32

	events    map[position]eventsValue
	eventIDs  map[string][][]string // per stream, each events record's ids
	resultIDs map[string][]string   // per stream, redeliveries dropped
	deadIDs   map[string][]string
	poisoned  int
	registry  map[string][]bool // per stream id: true a definition, false a tombstone
	marks     int
	traced    []kcatRecord
}

// record checks r's headers, value and partition as a kind record, and
// that its key is its value's keyField (when not ""); it decodes the value
// into into (when not nil).
func (c *recordsCheck) record(kind string, r kcatRecord, keyField string, into any) {
	t := c.t
	t.Helper()
	errs := c.doc.headers[kind].check(r, c.prefix)
	if s, ok := c.doc.values[kind]; ok && r.Payload != nil {
		errs = append(errs, s.check([]byte(*r.Payload))...)
	}
	topic := c.doc.topics[strings.Replace(r.Topic, c.prefix, "<prefix>", 1)]
	want := hashPartition(r.key(), c.partitions[r.Topic])
	if topic.byKey {
		n, _ := strconv.Atoi(r.key())
		want = int32(n)
	}
	if r.Partition != want {
		errs = append(errs, fmt.Sprintf("partition %d, documented %d for key %q", r.Partition, want, r.key()))
	}
	if keyField != "" && r.Payload != nil {
		var v map[string]any
		if err := json.Unmarshal([]byte(*r.Payload), &v); err == nil && v[keyField] != r.key() {
			errs = append(errs, fmt.Sprintf("key %q, documented as the value's %s (%v)", r.key(), keyField, v[keyField]))
		}
	}
	if into != nil && r.Payload != nil {
		if err := json.Unmarshal([]byte(*r.Payload), into); err != nil {
			errs = append(errs, err.Error())
		}
	}
	for _, e := range errs {
		t.Errorf("%s record %s: %s", kind, r, e)
	}
}

func (c *recordsCheck) eventsTopic(records []kcatRecord, foreign string) {
	c.eventIDs = map[string][][]string{}
	for _, r := range records {
		if r.key() == foreign {
			continue // the test's own foreign record
		}
		var v eventsValue
		c.record("events", r, "stream_id", &v)
		c.events[position{r.Partition, r.Offset}] = v
		var ids []string
		for _, e := range v.Events {
			ids = append(ids, e.EventID)
		}
		c.eventIDs[v.StreamID] = append(c.eventIDs[v.StreamID], ids)
		if _, ok := r.header("tracestate"); ok {
			c.traced = append(c.traced, r)
		}
	}
}

func (c *recordsCheck) resultsTopic(records []kcatRecord) {
	t := c.t
	c.resultIDs = map[string][]string{}
	last := map[string]position{}
	for _, r := range records {
		var v resultsValue
		c.record("results", r, "stream_id", &v)
		src := position{v.Source.Partition, v.Source.Offset}
		in, ok := c.events[src]
		if !ok || in.StreamID != v.StreamID {
			t.Errorf("results record %s: its source %+v is no events record of stream %s", r, src, v.StreamID)
			continue
		}
		// Each result's event is in the source record, in its order.
		var ids []string
		for _, e := range in.Events {
			ids = append(ids, e.EventID)
		}
		next := 0
		for _, res := range v.Results {
			i := slices.Index(ids[next:], res.EventID)
			if i < 0 || res.StreamID != v.StreamID {
				t.Errorf("results record %s: result %+v is not of an event of its source %v, in order", r, res, ids)
				break
			}
			next += i + 1
		}
		if _, ok := r.header("tracestate"); ok {
			c.traced = append(c.traced, r)
		}
		// The documented rule against redeliveries.
		if l, ok := last[v.StreamID]; ok && l.partition == src.partition && src.offset <= l.offset {
			continue
		}
		last[v.StreamID] = src
		for _, res := range v.Results {
			c.resultIDs[v.StreamID] = append(c.resultIDs[v.StreamID], res.EventID)
		}
	}
}

func (c *recordsCheck) poisonTopic(records []kcatRecord, foreign, foreignValue string) {
	t := c.t
	c.deadIDs = map[string][]string{}
	for _, r := range records {
		if _, ok := r.header("rtstream_dead_letter"); !ok {
			c.record("poisoned", r, "", nil)
			if r.key() != foreign || r.Payload == nil || *r.Payload != foreignValue {
				t.Errorf("poisoned record %s: key %q value %v, want the foreign record of %s as consumed", r, r.key(), r.Payload, foreign)
			}
			c.poisoned++
			continue
		}
		var v deadLetterValue
		c.record("dead-letter", r, "stream_id", &v)
		in, ok := c.events[position{v.Source.Partition, v.Source.Offset}]
		i := slices.IndexFunc(in.Events, func(e eventItem) bool { return e.EventID == v.EventID })
		if !ok || in.StreamID != v.StreamID || i < 0 || !jsonEqual(in.Events[i].Data, v.Data) {
			t.Errorf("dead letter %s: event %s of stream %s is not in its source %+v with that data", r, v.EventID, v.StreamID, v.Source)
		}
		c.deadIDs[v.StreamID] = append(c.deadIDs[v.StreamID], v.EventID)
	}
}

func (c *recordsCheck) streamsTopic(records []kcatRecord) {
	c.registry = map[string][]bool{}
	for _, r := range records {
		if r.Payload == nil {
			c.record("streams", r, "", nil)
		} else {
			c.record("streams", r, "id", nil)
		}
		c.registry[r.key()] = append(c.registry[r.key()], r.Payload != nil)
	}
}

func (c *recordsCheck) marksTopic(records []kcatRecord) {
	for _, r := range records {
		c.record("marks", r, "", nil)
		c.marks++
	}
}
