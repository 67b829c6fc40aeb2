package stack_test

import (
	"encoding/json"
	"net"
	"net/url"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// The trace store of the compose stack: Jaeger v2, which takes OTLP/HTTP on
// 4318 and serves its UI and query API on 16686.
const (
	jaegerImage     = "jaegertracing/jaeger:"
	jaegerOTLPHTTP  = "4318"
	jaegerQueryPort = "16686"
	// exemplarLabel is the exemplar label that carries the trace id of a
	// histogram observation (observability/metrics.go).
	exemplarLabel = "trace_id"
)

const datasourcesDir = "observability/grafana/provisioning/datasources"

// jaegerService returns the name and definition of the compose service that
// runs Jaeger.
func jaegerService(t *testing.T, c composeFile) (string, composeService) {
	t.Helper()
	var names []string
	for name, s := range c.Services {
		if strings.HasPrefix(s.Image, jaegerImage) {
			names = append(names, name)
		}
	}
	if len(names) != 1 {
		t.Fatalf("services running %s*: %v, want exactly one", jaegerImage, names)
	}
	return names[0], c.Services[names[0]]
}

// networks are the compose networks a service is attached to.
func (s composeService) networks() []string {
	var out []string
	switch v := s.Networks.(type) {
	case []any:
		for _, x := range v {
			if n, ok := x.(string); ok {
				out = append(out, n)
			}
		}
	case map[string]any:
		out = mapKeys(v)
	}
	if len(out) == 0 {
		return []string{"default"}
	}
	return out
}

// hostPort is the host port a short-syntax mapping of the service publishes
// containerPort on, with the compose variables at their defaults.
func (s composeService) hostPort(containerPort string) (string, bool) {
	for _, p := range s.Ports {
		if publishedPort(p) != containerPort {
			continue
		}
		parts := strings.Split(strings.TrimSuffix(interpolate(p), "/tcp"), ":")
		if len(parts) < 2 {
			return "", false // container port only: an ephemeral host port
		}
		return parts[len(parts)-2], true
	}
	return "", false
}

// The server sends its traces to the jaeger service, over OTLP/HTTP, which
// the service receives on a network they share.
func TestComposeTracing(t *testing.T) {
	c := loadCompose(t)
	jname, j := jaegerService(t, c)
	if tag := strings.TrimPrefix(j.Image, jaegerImage); !strings.HasPrefix(tag, "2.") {
		t.Errorf("image %s: want Jaeger v2 (2.x), the all-in-one that receives OTLP", j.Image)
	}
	// The image's built-in all-in-one configuration listens for OTLP/HTTP on
	// 4318 on every interface (the image sets JAEGER_LISTEN_HOST=0.0.0.0)
	// and keeps the traces in memory. A configuration of our own would need
	// this test to read it.
	if len(j.Command) > 0 {
		t.Errorf("%s: command %v: the test expects the image's built-in configuration", jname, j.Command)
	}
	if h, ok := j.Environment["JAEGER_LISTEN_HOST"]; ok && h != "0.0.0.0" {
		t.Errorf("%s: JAEGER_LISTEN_HOST=%q: the receivers must listen on 0.0.0.0 for rtstream to reach them", jname, h)
	}

	s := c.Services["rtstream"]
	env := map[string]string{}
	for k, v := range s.Environment {
		env[k] = interpolate(v)
	}
	endpoint := env["OTEL_EXPORTER_OTLP_ENDPOINT"]
	u, err := url.Parse(endpoint)
	if err != nil || u.Scheme != "http" || u.Host == "" {
		t.Fatalf("rtstream: OTEL_EXPORTER_OTLP_ENDPOINT=%q: want http://%s:%s", endpoint, jname, jaegerOTLPHTTP)
	}
	if host, port, _ := net.SplitHostPort(u.Host); host != jname || port != jaegerOTLPHTTP {
		t.Errorf("rtstream: OTEL_EXPORTER_OTLP_ENDPOINT=%s: want the %s service on %s (OTLP/HTTP; rtstream has no OTLP/gRPC)", endpoint, jname, jaegerOTLPHTTP)
	}
	// The exporter appends /v1/traces to the base endpoint.
	if u.Path != "" && u.Path != "/" {
		t.Errorf("rtstream: OTEL_EXPORTER_OTLP_ENDPOINT=%s: a base URL without a path is wanted; the exporter adds /v1/traces", endpoint)
	}
	if p := env["OTEL_EXPORTER_OTLP_PROTOCOL"]; p != "" && p != "http/protobuf" {
		t.Errorf("rtstream: OTEL_EXPORTER_OTLP_PROTOCOL=%q: rtstream exports http/protobuf only", p)
	}
	if got := env["OTEL_SERVICE_NAME"]; got != "rtstream" {
		t.Errorf("rtstream: OTEL_SERVICE_NAME=%q, want rtstream (the dashboard's trace links search that service)", got)
	}
	switch sampler := env["OTEL_TRACES_SAMPLER"]; sampler {
	case "always_on", "parentbased_always_on":
	case "traceidratio", "parentbased_traceidratio":
		arg := env["OTEL_TRACES_SAMPLER_ARG"]
		if r, err := strconv.ParseFloat(arg, 64); err != nil || r <= 0 || r > 1 {
			t.Errorf("rtstream: OTEL_TRACES_SAMPLER_ARG=%q: want a ratio in (0, 1]", arg)
		}
	default:
		t.Errorf("rtstream: OTEL_TRACES_SAMPLER=%q: want a sampler that records traces (parentbased_traceidratio)", sampler)
	}
	if _, ok := s.DependsOn[jname]; !ok {
		t.Errorf("rtstream does not depend on %s", jname)
	}
	shared := false
	for _, n := range s.networks() {
		shared = shared || slices.Contains(j.networks(), n)
	}
	if !shared {
		t.Errorf("rtstream (networks %v) and %s (networks %v) share no network", s.networks(), jname, j.networks())
	}
	if _, ok := j.hostPort(jaegerQueryPort); !ok {
		t.Errorf("%s: ports %v: the UI (%s) is not published on a fixed host port", jname, j.Ports, jaegerQueryPort)
	}
}

// Prometheus keeps exemplars, and scrapes rtstream in a format that carries
// them.
func TestComposePrometheusExemplars(t *testing.T) {
	c := loadCompose(t)
	features := map[string]bool{}
	for _, arg := range c.Services["prometheus"].Command {
		if v, ok := strings.CutPrefix(arg, "--enable-feature="); ok {
			for _, f := range strings.Split(v, ",") {
				features[strings.TrimSpace(f)] = true
			}
		}
	}
	if !features["exemplar-storage"] {
		t.Errorf("prometheus command %v: want --enable-feature=exemplar-storage", c.Services["prometheus"].Command)
	}

	// Only OpenMetrics (and the protobuf format) carry exemplars: if the
	// protocols are set, one of those must come first. Unset, Prometheus
	// asks for OpenMetrics first.
	var pc struct {
		Global struct {
			ScrapeProtocols []string `yaml:"scrape_protocols"`
		} `yaml:"global"`
		ScrapeConfigs []struct {
			JobName         string   `yaml:"job_name"`
			ScrapeProtocols []string `yaml:"scrape_protocols"`
		} `yaml:"scrape_configs"`
	}
	readYAML(t, "observability/prometheus/prometheus.yml", &pc)
	protocols := pc.Global.ScrapeProtocols
	found := false
	for _, sc := range pc.ScrapeConfigs {
		if sc.JobName == "rtstream" {
			found = true
			if len(sc.ScrapeProtocols) > 0 {
				protocols = sc.ScrapeProtocols
			}
		}
	}
	if !found {
		t.Fatal("prometheus.yml: no rtstream job")
	}
	if len(protocols) > 0 && !strings.HasPrefix(protocols[0], "OpenMetricsText") && protocols[0] != "PrometheusProto" {
		t.Errorf("job rtstream: scrape_protocols %v: the first carries no exemplars; want OpenMetricsText1.0.0 first", protocols)
	}
}

// grafanaDatasource is the part of a provisioned datasource the tests read.
type grafanaDatasource struct {
	Name     string `yaml:"name"`
	UID      string `yaml:"uid"`
	Type     string `yaml:"type"`
	URL      string `yaml:"url"`
	JSONData struct {
		ExemplarTraceIDDestinations []struct {
			Name          string `yaml:"name"`
			DatasourceUID string `yaml:"datasourceUid"`
			URL           string `yaml:"url"`
		} `yaml:"exemplarTraceIdDestinations"`
	} `yaml:"jsonData"`
}

// grafanaExpand is what Grafana's provisioning does to every string value:
// environment variables are expanded ($X, ${X}; none is set for these files)
// and $$ stands for a literal $.
func grafanaExpand(s string) string {
	parts := strings.Split(s, "$$")
	for i, p := range parts {
		parts[i] = os.Expand(p, func(string) string { return "" })
	}
	return strings.Join(parts, "$")
}

func grafanaExpandAll(v any) any {
	switch x := v.(type) {
	case string:
		return grafanaExpand(x)
	case []any:
		for i := range x {
			x[i] = grafanaExpandAll(x[i])
		}
	case map[string]any:
		for k := range x {
			x[k] = grafanaExpandAll(x[k])
		}
	}
	return v
}

// provisionedDatasources are the datasources of every file in the
// provisioning directory, as Grafana sees them after expansion.
func provisionedDatasources(t *testing.T) []grafanaDatasource {
	t.Helper()
	entries, err := os.ReadDir(repoPath(datasourcesDir))
	if err != nil {
		t.Fatal(err)
	}
	var out []grafanaDatasource
	for _, e := range entries {
		if e.IsDir() || (path.Ext(e.Name()) != ".yml" && path.Ext(e.Name()) != ".yaml") {
			continue
		}
		var raw any
		readYAML(t, path.Join(datasourcesDir, e.Name()), &raw)
		data, err := yaml.Marshal(grafanaExpandAll(raw))
		if err != nil {
			t.Fatal(err)
		}
		var f struct {
			Datasources []grafanaDatasource `yaml:"datasources"`
		}
		if err := yaml.Unmarshal(data, &f); err != nil {
			t.Fatalf("%s: %v", e.Name(), err)
		}
		out = append(out, f.Datasources...)
	}
	return out
}

// jaegerDatasource is the provisioned datasource of type jaeger.
func jaegerDatasource(t *testing.T, all []grafanaDatasource) grafanaDatasource {
	t.Helper()
	var found []grafanaDatasource
	for _, ds := range all {
		if ds.Type == "jaeger" {
			found = append(found, ds)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%s: %d datasources of type jaeger, want one", datasourcesDir, len(found))
	}
	return found[0]
}

// checkJaegerUIURL reports whether raw is a URL of the Jaeger UI as the host
// sees it: localhost and the port compose publishes the UI on.
func checkJaegerUIURL(t *testing.T, c composeFile, where, raw string) {
	t.Helper()
	_, j := jaegerService(t, c)
	port, _ := j.hostPort(jaegerQueryPort)
	u, err := url.Parse(raw)
	if err != nil {
		t.Errorf("%s: %q: %v", where, raw, err)
		return
	}
	if h, p, _ := net.SplitHostPort(u.Host); (h != "localhost" && h != "127.0.0.1") || p != port {
		t.Errorf("%s: %s is not the Jaeger UI on the host (localhost:%s)", where, raw, port)
	}
}

// Grafana has a jaeger datasource on the jaeger service, and the Prometheus
// datasource sends the trace_id of an exemplar to it.
func TestGrafanaTraceDatasource(t *testing.T) {
	c := loadCompose(t)
	jname, _ := jaegerService(t, c)
	all := provisionedDatasources(t)
	uids := map[string]bool{}
	for _, ds := range all {
		if ds.UID == "" || uids[ds.UID] {
			t.Errorf("datasource %q: uid %q is missing or not unique", ds.Name, ds.UID)
		}
		uids[ds.UID] = true
	}

	jds := jaegerDatasource(t, all)
	u, err := url.Parse(jds.URL)
	if err != nil {
		t.Fatalf("jaeger datasource url: %v", err)
	}
	if host, port, _ := net.SplitHostPort(u.Host); u.Scheme != "http" || host != jname || port != jaegerQueryPort {
		t.Errorf("jaeger datasource url %s: want http://%s:%s (the query API)", jds.URL, jname, jaegerQueryPort)
	}

	var prom []grafanaDatasource
	for _, ds := range all {
		if ds.Type == "prometheus" {
			prom = append(prom, ds)
		}
	}
	if len(prom) == 0 {
		t.Fatal("no prometheus datasource")
	}
	for _, p := range prom {
		toJaeger := false
		for _, d := range p.JSONData.ExemplarTraceIDDestinations {
			if d.Name != exemplarLabel {
				t.Errorf("datasource %s: exemplar destination %+v: the exemplars' label is %s", p.UID, d, exemplarLabel)
			}
			switch {
			case d.DatasourceUID != "":
				if !uids[d.DatasourceUID] {
					t.Errorf("datasource %s: exemplar destination %+v: no datasource has uid %q", p.UID, d, d.DatasourceUID)
				}
				toJaeger = toJaeger || (d.Name == exemplarLabel && d.DatasourceUID == jds.UID)
			case d.URL != "":
				// After Grafana's expansion, the link still has the
				// placeholder of the trace id.
				if !strings.Contains(d.URL, "${__value.raw}") {
					t.Errorf("datasource %s: exemplar link %s has no ${__value.raw} (write $${__value.raw}: Grafana expands $ in provisioning files)", p.UID, d.URL)
				}
				checkJaegerUIURL(t, c, "datasource "+p.UID+" exemplar link", d.URL)
			default:
				t.Errorf("datasource %s: exemplar destination %+v has neither datasourceUid nor url", p.UID, d)
			}
		}
		if !toJaeger {
			t.Errorf("datasource %s: exemplarTraceIdDestinations %+v: want {name: %s, datasourceUid: %s}", p.UID, p.JSONData.ExemplarTraceIDDestinations, exemplarLabel, jds.UID)
		}
	}
}

// The dashboard links to the trace store: Grafana's Explore on the jaeger
// datasource, or the Jaeger UI.
func TestDashboardTraceLinks(t *testing.T) {
	c := loadCompose(t)
	jds := jaegerDatasource(t, provisionedDatasources(t))
	d := loadDashboard(t)
	n := 0
	for _, l := range d.Links {
		if l.Type != "link" {
			continue
		}
		where := "dashboard link " + strconv.Quote(l.Title)
		u, err := url.Parse(l.URL)
		if err != nil {
			t.Errorf("%s: %v", where, err)
			continue
		}
		switch {
		case u.Host == "" && u.Path == "/explore":
			panes := map[string]explorePane{}
			if v := u.Query().Get("panes"); v != "" {
				if err := json.Unmarshal([]byte(v), &panes); err != nil {
					t.Errorf("%s: panes: %v", where, err)
					continue
				}
			} else if v := u.Query().Get("left"); v != "" {
				var p explorePane
				if err := json.Unmarshal([]byte(v), &p); err != nil {
					t.Errorf("%s: left: %v", where, err)
					continue
				}
				panes["left"] = p
			}
			if len(panes) == 0 {
				t.Errorf("%s: %s opens Explore on no datasource", where, l.URL)
			}
			toJaeger := false
			for _, p := range panes {
				if p.Datasource != jds.UID {
					continue
				}
				toJaeger = true
				for _, q := range p.Queries {
					if q.Datasource != nil && q.Datasource.UID != jds.UID {
						t.Errorf("%s: query %s on datasource %+v, in a pane of %s", where, q.RefID, q.Datasource, jds.UID)
					}
					if q.Service != "" && q.Service != "rtstream" {
						t.Errorf("%s: searches service %q, want rtstream", where, q.Service)
					}
				}
			}
			if toJaeger {
				n++
			} else {
				t.Errorf("%s: Explore is not opened on the jaeger datasource (uid %s)", where, jds.UID)
			}
		case strings.HasSuffix(u.Host, ":"+jaegerQueryPort) || strings.Contains(strings.ToLower(l.Title), "jaeger"):
			checkJaegerUIURL(t, c, where, l.URL)
			n++
		}
	}
	if n == 0 {
		t.Errorf("dashboard links %+v: none leads to the traces (Explore on datasource %s, or the Jaeger UI)", d.Links, jds.UID)
	}
}

// explorePane is one pane of an Explore URL.
type explorePane struct {
	Datasource string `json:"datasource"`
	Queries    []struct {
		RefID      string `json:"refId"`
		Datasource *dsRef `json:"datasource"`
		Service    string `json:"service"`
	} `json:"queries"`
}

// The latency graphs of the two histograms whose observations carry a
// trace id ask Prometheus for their exemplars, so that a point links to its
// trace.
func TestDashboardExemplars(t *testing.T) {
	histograms := []string{
		"rtstream_http_request_duration_seconds",
		"rtstream_result_delivery_age_seconds",
	}
	graphs := map[string]int{}
	for _, p := range loadDashboard(t).allPanels() {
		// Stat panels show no exemplars; graphs do.
		if p.Type != "timeseries" {
			continue
		}
		for _, tg := range p.Targets {
			for _, h := range histograms {
				if !slices.Contains(metricNames(tg.Expr), h+"_bucket") {
					continue
				}
				graphs[h]++
				if !tg.Exemplar {
					t.Errorf("panel %q %s: the query of %s has no \"exemplar\": true", p.Title, tg.RefID, h)
				}
			}
		}
	}
	for _, h := range histograms {
		if graphs[h] == 0 {
			t.Errorf("no time series panel graphs %s_bucket, with its exemplars", h)
		}
	}
}
