package stack_test

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

const dashboardPath = "observability/grafana/dashboards/rtstream.json"

type dashboard struct {
	UID           string  `json:"uid"`
	Title         string  `json:"title"`
	SchemaVersion int     `json:"schemaVersion"`
	Panels        []panel `json:"panels"`
	Links         []struct {
		Title string `json:"title"`
		Type  string `json:"type"` // "link" or "dashboards"
		URL   string `json:"url"`
	} `json:"links"`
	Templating struct {
		List []struct {
			Name       string `json:"name"`
			Type       string `json:"type"`
			Query      any    `json:"query"`
			Definition string `json:"definition"`
			Current    struct {
				Value any `json:"value"`
			} `json:"current"`
		} `json:"list"`
	} `json:"templating"`
}

type panel struct {
	ID          int    `json:"id"`
	Type        string `json:"type"`
	Title       string `json:"title"`
	Description string `json:"description"`
	GridPos     struct {
		X, Y, W, H int
	} `json:"gridPos"`
	Datasource *dsRef   `json:"datasource"`
	Targets    []target `json:"targets"`
	Panels     []panel  `json:"panels"` // the panels of a collapsed row
}

type dsRef struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type target struct {
	RefID        string `json:"refId"`
	Expr         string `json:"expr"`
	LegendFormat string `json:"legendFormat"`
	Datasource   *dsRef `json:"datasource"`
	Exemplar     bool   `json:"exemplar"`
}

func loadDashboard(t *testing.T) dashboard {
	t.Helper()
	var d dashboard
	if err := json.Unmarshal(readRepoFile(t, dashboardPath), &d); err != nil {
		t.Fatalf("parsing %s: %v", dashboardPath, err)
	}
	return d
}

// allPanels flattens rows: a collapsed row keeps its panels inside it.
func (d dashboard) allPanels() []panel {
	var out []panel
	for _, p := range d.Panels {
		out = append(out, p)
		out = append(out, p.Panels...)
	}
	return out
}

// dashboardDatasourceDefault is the datasource uid the dashboard's
// datasource variable starts with.
func dashboardDatasourceDefault(t *testing.T) string {
	t.Helper()
	for _, v := range loadDashboard(t).Templating.List {
		if v.Name == "datasource" {
			s, _ := v.Current.Value.(string)
			return s
		}
	}
	t.Fatal("the dashboard has no datasource variable")
	return ""
}

// query is one PromQL expression of the dashboard or the alert rules, and
// where it comes from.
type query struct {
	where, expr string
}

func dashboardQueries(t *testing.T) []query {
	t.Helper()
	var out []query
	for _, p := range loadDashboard(t).allPanels() {
		for _, tg := range p.Targets {
			out = append(out, query{fmt.Sprintf("panel %q %s", p.Title, tg.RefID), tg.Expr})
		}
	}
	return out
}

// alertRules are the rules of observability/prometheus/rules.yml.
type alertRules struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Alert       string            `yaml:"alert"`
			Record      string            `yaml:"record"`
			Expr        string            `yaml:"expr"`
			For         string            `yaml:"for"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

func loadRules(t *testing.T) alertRules {
	t.Helper()
	var r alertRules
	readYAML(t, "observability/prometheus/rules.yml", &r)
	return r
}

func ruleQueries(t *testing.T) []query {
	t.Helper()
	var out []query
	for _, g := range loadRules(t).Groups {
		for _, r := range g.Rules {
			out = append(out, query{"alert " + r.Alert + r.Record, r.Expr})
		}
	}
	return out
}

var (
	stringLiteral = regexp.MustCompile(`"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|` + "`[^`]*`")
	metricName    = regexp.MustCompile(`\b(?:rtstream|go|process)_[a-zA-Z0-9_]*[a-zA-Z0-9]`)
)

// metricNames are the rtstream_*, go_* and process_* names in a PromQL
// expression, string literals (label values) left out.
func metricNames(expr string) []string {
	return metricName.FindAllString(stringLiteral.ReplaceAllString(expr, `""`), -1)
}

// grafanaVars replaces Grafana's variables by values Prometheus accepts.
var grafanaVars = strings.NewReplacer(
	"$__rate_interval", "1m", "${__rate_interval}", "1m",
	"$__interval", "1m", "${__interval}", "1m",
	"$__range", "1h", "${__range}", "1h",
	"${instance}", ".*", "$instance", ".*",
)

// bannedLabels would give a series per stream, client or key: unbounded.
var bannedLabels = []string{"stream", "stream_id", "id", "event_id", "key", "api_key", "ip", "client", "client_ip", "remote_addr", "user"}

var (
	groupingClause = regexp.MustCompile(`\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)`)
	matcherName    = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)\s*""`)
	legendLabel    = regexp.MustCompile(`\{\{\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\}\}`)
)

// labelNames are the label names an expression groups, joins or matches on.
func labelNames(expr string) []string {
	e := stringLiteral.ReplaceAllString(expr, `""`)
	var out []string
	for _, m := range groupingClause.FindAllStringSubmatch(e, -1) {
		for _, l := range strings.Split(m[1], ",") {
			if l = strings.TrimSpace(l); l != "" {
				out = append(out, l)
			}
		}
	}
	for _, m := range matcherName.FindAllStringSubmatch(e, -1) {
		out = append(out, m[1])
	}
	return out
}

func TestDashboardStructure(t *testing.T) {
	d := loadDashboard(t)
	if d.UID != "rtstream" {
		t.Errorf("uid %q, want rtstream (links and the provisioning rely on it)", d.UID)
	}
	if d.Title == "" {
		t.Error("no title")
	}
	if d.SchemaVersion < 36 || d.SchemaVersion > 41 {
		t.Errorf("schemaVersion %d: want about 39 (Grafana 10/11/12)", d.SchemaVersion)
	}
	hasInstanceVar := false
	for _, v := range d.Templating.List {
		if v.Name == "instance" {
			hasInstanceVar = true
		}
	}

	ids := map[int]string{}
	type rect struct {
		title      string
		x, y, w, h int
	}
	var placed []rect
	for _, p := range d.allPanels() {
		if prev, dup := ids[p.ID]; dup || p.ID == 0 {
			t.Errorf("panel %q: id %d is missing or also used by %q", p.Title, p.ID, prev)
		}
		ids[p.ID] = p.Title
		g := p.GridPos
		if g.W < 1 || g.H < 1 || g.X < 0 || g.X+g.W > 24 {
			t.Errorf("panel %q: gridPos %+v is outside the 24-column grid", p.Title, g)
		}
		for _, r := range placed {
			if g.X < r.x+r.w && r.x < g.X+g.W && g.Y < r.y+r.h && r.y < g.Y+g.H {
				t.Errorf("panel %q overlaps panel %q", p.Title, r.title)
			}
		}
		placed = append(placed, rect{p.Title, g.X, g.Y, g.W, g.H})
		if p.Type == "row" {
			continue
		}
		if p.Title == "" || p.Description == "" {
			t.Errorf("panel %d: want a title and a description", p.ID)
		}
		if p.Datasource == nil || p.Datasource.UID != "${datasource}" {
			t.Errorf("panel %q: datasource %+v, want the ${datasource} variable", p.Title, p.Datasource)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q: no queries", p.Title)
		}
		refs := map[string]bool{}
		for _, tg := range p.Targets {
			if tg.Expr == "" || tg.RefID == "" || refs[tg.RefID] {
				t.Errorf("panel %q: target %+v: want an expr and a unique refId", p.Title, tg)
			}
			refs[tg.RefID] = true
			if tg.Datasource != nil && tg.Datasource.UID != "${datasource}" {
				t.Errorf("panel %q %s: datasource %+v, want ${datasource}", p.Title, tg.RefID, tg.Datasource)
			}
			if hasInstanceVar && !strings.Contains(tg.Expr, "$instance") {
				t.Errorf("panel %q %s: the query ignores the instance variable: %s", p.Title, tg.RefID, tg.Expr)
			}
			for _, l := range legendLabel.FindAllStringSubmatch(tg.LegendFormat, -1) {
				if slices.Contains(bannedLabels, l[1]) {
					t.Errorf("panel %q: legend shows label %q", p.Title, l[1])
				}
			}
		}
	}

	// The dashboard shows every part of the service.
	used := map[string]bool{}
	for _, q := range dashboardQueries(t) {
		for _, n := range metricNames(q.expr) {
			used[strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(n, "_bucket"), "_count"), "_sum")] = true
		}
	}
	for _, want := range []string{
		"rtstream_http_requests_total", "rtstream_http_request_duration_seconds",
		"rtstream_ratelimit_denied_total", "rtstream_auth_failures_total",
		"rtstream_kafka_publish_total", "rtstream_kafka_publish_duration_seconds",
		"rtstream_watermill_handler_execution_time_seconds", "rtstream_processing_duration_seconds",
		"rtstream_poison_messages_total", "rtstream_consumer_lag", "rtstream_subscribers",
		"rtstream_results_delivered_total", "rtstream_slow_client_disconnects_total",
		"rtstream_result_delivery_age_seconds", "rtstream_ready",
	} {
		if !used[want] {
			t.Errorf("no panel shows %s", want)
		}
	}
}

// No query groups or filters by a label that would name a stream, a client or
// a key: those have no bound.
func TestQueriesUseBoundedLabels(t *testing.T) {
	for _, q := range slices.Concat(dashboardQueries(t), ruleQueries(t)) {
		for _, l := range labelNames(q.expr) {
			if slices.Contains(bannedLabels, l) {
				t.Errorf("%s uses label %q: %s", q.where, l, q.expr)
			}
		}
	}
}

// Every dashboard query is valid PromQL: promtool checks them as recording
// rules, with Grafana's variables filled in.
func TestDashboardQueriesParse(t *testing.T) {
	promtool := needTool(t, "promtool")
	type rule struct {
		Record string `yaml:"record"`
		Expr   string `yaml:"expr"`
	}
	var rules []rule
	for i, q := range dashboardQueries(t) {
		e := grafanaVars.Replace(q.expr)
		if strings.Contains(e, "$") {
			t.Errorf("%s: a Grafana variable this test does not know: %s", q.where, q.expr)
		}
		rules = append(rules, rule{fmt.Sprintf("dashboard:query_%d", i), e})
	}
	data, err := yaml.Marshal(map[string]any{"groups": []any{map[string]any{"name": "dashboard", "rules": rules}}})
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "dashboard-queries.yml")
	if err := os.WriteFile(file, data, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(promtool, "check", "rules", file).CombinedOutput()
	if err != nil {
		t.Errorf("promtool check rules on the dashboard's queries: %v\n%s", err, out)
		for i, q := range dashboardQueries(t) {
			if strings.Contains(string(out), fmt.Sprintf("query_%d\"", i)) || strings.Contains(string(out), fmt.Sprintf("query_%d:", i)) {
				t.Logf("dashboard:query_%d is %s", i, q.where)
			}
		}
	}
}

// usedMetrics maps each metric name the dashboard and the alert rules use to
// the places that use it.
func usedMetrics(t *testing.T) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	qs := slices.Concat(dashboardQueries(t), ruleQueries(t))
	for _, v := range loadDashboard(t).Templating.List {
		if v.Type == "query" {
			qs = append(qs, query{"variable " + v.Name, v.Definition})
		}
	}
	for _, q := range qs {
		for _, n := range metricNames(q.expr) {
			if !slices.Contains(out[n], q.where) {
				out[n] = append(out[n], q.where)
			}
		}
	}
	return out
}

// exported reports whether the name a query uses is in the scraped families:
// a family itself, or a histogram's or summary's _bucket/_sum/_count series.
func exported(fams map[string]string, name string) bool {
	if _, ok := fams[name]; ok {
		return true
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		if base, ok := strings.CutSuffix(name, suffix); ok {
			typ := fams[base]
			if typ == "histogram" || (typ == "summary" && suffix != "_bucket") {
				return true
			}
		}
	}
	return false
}

// The server exports every metric the dashboard and the alert rules use, once
// it served a little traffic, and none of its series carries an unbounded
// label (a stream id, a key, a client address).
func TestMetricsExported(t *testing.T) {
	used := usedMetrics(t)
	if len(used) < 20 {
		t.Fatalf("found only %d metric names in the dashboard and rules: %v", len(used), mapKeys(used))
	}
	s := startServer(t)
	streamID := s.exercise(t)

	// Some gauges (consumer lag) are refreshed periodically: give them a
	// few scrapes to appear.
	var missing []string
	var scrape *scraped
	deadline := time.Now().Add(20 * time.Second)
	for {
		scrape = s.scrapeMetrics(t)
		missing = missing[:0]
		for _, n := range mapKeys(used) {
			if !exported(scrape.families, n) {
				missing = append(missing, n)
			}
		}
		if len(missing) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Second)
	}
	for _, n := range missing {
		t.Errorf("%s is not exported; used by %s", n, strings.Join(used[n], "; "))
	}

	for _, sm := range scrape.samples {
		if !strings.HasPrefix(sm.name, "rtstream_") {
			continue
		}
		for l, v := range sm.labels {
			if slices.Contains(bannedLabels, l) {
				t.Errorf("%s has label %s=%q: unbounded", sm.name, l, v)
			}
			if v == streamID || v == testAPIKey || strings.Contains(v, "127.0.0.1") {
				t.Errorf("%s has label %s=%q: names a stream, key or client", sm.name, l, v)
			}
		}
	}
}
