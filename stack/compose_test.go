package stack_test

import (
	"net"
	"net/url"
	"path"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// composeFile is the part of docker-compose.yml the tests read.
type composeFile struct {
	Name     string                    `yaml:"name"`
	Services map[string]composeService `yaml:"services"`
	Volumes  map[string]any            `yaml:"volumes"`
}

type composeService struct {
	Image       string            `yaml:"image"`
	Build       any               `yaml:"build"`    // "dir" or {context, dockerfile}
	EnvFile     any               `yaml:"env_file"` // "file", ["file"] or [{path, required}]
	Environment map[string]string `yaml:"environment"`
	Command     []string          `yaml:"command"`
	Ports       []string          `yaml:"ports"`
	Volumes     []string          `yaml:"volumes"`
	Networks    any               `yaml:"networks"` // ["net"] or {net: {...}}
	DependsOn   map[string]struct {
		Condition string `yaml:"condition"`
	} `yaml:"depends_on"`
	Healthcheck *struct {
		Test    any    `yaml:"test"` // "CMD-SHELL cmd" string or ["CMD", ...]
		Disable bool   `yaml:"disable"`
		Timeout string `yaml:"timeout"`
	} `yaml:"healthcheck"`
}

func loadCompose(t *testing.T) composeFile {
	t.Helper()
	var c composeFile
	readYAML(t, "docker-compose.yml", &c)
	if len(c.Services) == 0 {
		t.Fatal("docker-compose.yml: no services")
	}
	return c
}

// interpolation matches ${VAR}, ${VAR:-default} and ${VAR-default}.
var interpolation = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?-([^}]*))?\}`)

// interpolate replaces compose variables by their defaults, so the checks do
// not depend on the caller's environment or .env.
func interpolate(s string) string {
	return interpolation.ReplaceAllString(s, "$2")
}

// publishedPort is the container port of a short-syntax port mapping
// ("[ip:]host:container[/proto]").
func publishedPort(mapping string) string {
	m := strings.TrimSuffix(interpolate(mapping), "/tcp")
	return m[strings.LastIndex(m, ":")+1:]
}

// mount is one short-syntax volume: source (a host path or a named volume),
// target in the container.
type mount struct{ source, target string }

func (s composeService) mounts(t *testing.T) []mount {
	t.Helper()
	var out []mount
	for _, v := range s.Volumes {
		parts := strings.Split(interpolate(v), ":")
		if len(parts) < 2 {
			t.Errorf("volume %q: want source:target[:mode]", v)
			continue
		}
		out = append(out, mount{parts[0], parts[1]})
	}
	return out
}

// hostPathFor is the repository path (slash-separated) that a bind mount of
// the service shows at containerPath.
func (s composeService) hostPathFor(t *testing.T, containerPath string) (string, bool) {
	t.Helper()
	for _, m := range s.mounts(t) {
		if !isHostPath(m.source) {
			continue
		}
		if rel, ok := strings.CutPrefix(containerPath, strings.TrimSuffix(m.target, "/")); ok && (rel == "" || rel[0] == '/') {
			return path.Clean(path.Join(m.source, rel)), true
		}
	}
	return "", false
}

func isHostPath(source string) bool {
	return strings.HasPrefix(source, ".") || strings.HasPrefix(source, "/")
}

func (s composeService) healthTest() []string {
	if s.Healthcheck == nil || s.Healthcheck.Disable {
		return nil
	}
	switch v := s.Healthcheck.Test.(type) {
	case string:
		return []string{"CMD-SHELL", v}
	case []any:
		var out []string
		for _, x := range v {
			if s, ok := x.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}

// buildContext returns the build context and Dockerfile of the service.
func (s composeService) buildContext() (dir, dockerfile string, ok bool) {
	switch b := s.Build.(type) {
	case string:
		return b, "Dockerfile", true
	case map[string]any:
		dir, _ = b["context"].(string)
		dockerfile, _ = b["dockerfile"].(string)
		if dir == "" {
			dir = "."
		}
		if dockerfile == "" {
			dockerfile = "Dockerfile"
		}
		return dir, dockerfile, true
	}
	return "", "", false
}

// envFiles returns the service's env files and whether each is required.
func (s composeService) envFiles() map[string]bool {
	out := map[string]bool{}
	add := func(x any) {
		switch v := x.(type) {
		case string:
			out[v] = true
		case map[string]any:
			p, _ := v["path"].(string)
			req, set := v["required"].(bool)
			out[p] = req || !set
		}
	}
	switch v := s.EnvFile.(type) {
	case []any:
		for _, x := range v {
			add(x)
		}
	default:
		add(v)
	}
	return out
}

func TestComposeServices(t *testing.T) {
	c := loadCompose(t)
	// Each service, the container port it publishes, and what it waits for.
	want := []struct {
		name, port, dependsOn string
	}{
		{"kafka", "19092", ""},
		{"rtstream", "8080", "kafka"},
		{"jaeger", "16686", ""},
		{"prometheus", "9090", "rtstream"},
		{"grafana", "3000", "prometheus"},
	}
	for _, w := range want {
		t.Run(w.name, func(t *testing.T) {
			s, ok := c.Services[w.name]
			if !ok {
				t.Fatalf("no service %q (have %v)", w.name, mapKeys(c.Services))
			}
			if s.Image == "" && s.Build == nil {
				t.Error("neither image nor build")
			}
			if strings.HasSuffix(s.Image, ":latest") || (s.Build == nil && !strings.Contains(s.Image, ":")) {
				t.Errorf("image %q: pin a version", s.Image)
			}
			var ports []string
			for _, p := range s.Ports {
				ports = append(ports, publishedPort(p))
			}
			if !slices.Contains(ports, w.port) {
				t.Errorf("ports %v: container port %s is not published", s.Ports, w.port)
			}
			// Every service has a health check, so that depends_on can wait
			// for it and `docker compose up --wait` means "working".
			test := s.healthTest()
			if len(test) < 2 || test[0] == "NONE" || (test[0] != "CMD" && test[0] != "CMD-SHELL") {
				t.Errorf("healthcheck test %v: want [CMD ...] or [CMD-SHELL ...]", s.Healthcheck)
			}
			if w.dependsOn != "" {
				dep, ok := s.DependsOn[w.dependsOn]
				if !ok {
					t.Errorf("does not depend on %s", w.dependsOn)
				} else if dep.Condition != "service_healthy" {
					t.Errorf("depends_on %s: condition %q, want service_healthy", w.dependsOn, dep.Condition)
				}
			}
			for dep := range s.DependsOn {
				if _, ok := c.Services[dep]; !ok {
					t.Errorf("depends on unknown service %q", dep)
				}
			}
		})
	}
}

func TestComposeRtstream(t *testing.T) {
	c := loadCompose(t)
	s := c.Services["rtstream"]
	dir, dockerfile, ok := s.buildContext()
	if !ok {
		t.Fatal("rtstream is not built from this repository (no build:)")
	}
	if dir != "." || dockerfile != "Dockerfile" {
		t.Errorf("build context %q, Dockerfile %q: want the repository root and its Dockerfile", dir, dockerfile)
	}
	files := s.envFiles()
	if _, ok := files[".env"]; !ok {
		t.Errorf("env_file %v: want .env", s.EnvFile)
	}
	if got := s.Environment["KAFKA_BROKERS"]; got != "kafka:9092" {
		t.Errorf("KAFKA_BROKERS=%q, want kafka:9092", got)
	}
	if got := s.Environment["HTTP_ADDR"]; got != ":8080" {
		t.Errorf("HTTP_ADDR=%q, want :8080 (the health check, port mapping and Prometheus use 8080)", got)
	}
	test := strings.Join(s.healthTest(), " ")
	if !strings.Contains(test, "http://127.0.0.1:8080/readyz") {
		t.Errorf("healthcheck %q: want it to ask /readyz on port 8080", test)
	}

	// The broker must advertise kafka:9092 on a listener the app can use.
	k := c.Services["kafka"]
	env := map[string]string{}
	for key, v := range k.Environment {
		env[key] = interpolate(v)
	}
	if !strings.Contains(env["KAFKA_ADVERTISED_LISTENERS"], "://kafka:9092") {
		t.Errorf("KAFKA_ADVERTISED_LISTENERS=%q: the app connects to kafka:9092", env["KAFKA_ADVERTISED_LISTENERS"])
	}
	if !strings.Contains(env["KAFKA_LISTENERS"], ":9092") {
		t.Errorf("KAFKA_LISTENERS=%q: nothing listens on 9092", env["KAFKA_LISTENERS"])
	}
	if !strings.Contains(env["KAFKA_PROCESS_ROLES"], "broker") || !strings.Contains(env["KAFKA_PROCESS_ROLES"], "controller") {
		t.Errorf("KAFKA_PROCESS_ROLES=%q: want a single KRaft node that is broker and controller", env["KAFKA_PROCESS_ROLES"])
	}
	if env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] != "1" {
		t.Errorf("KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR=%q: a single node needs 1", env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"])
	}
	if hc := strings.Join(k.healthTest(), " "); !strings.Contains(hc, "kafka-broker-api-versions.sh") {
		t.Errorf("kafka healthcheck %q: want kafka-broker-api-versions.sh", hc)
	}
}

// Every host path the compose file mounts or builds from is in the repository,
// and every named volume is declared.
func TestComposePathsExist(t *testing.T) {
	c := loadCompose(t)
	for name, s := range c.Services {
		if dir, dockerfile, ok := s.buildContext(); ok {
			if !exists(repoPath(dir)) {
				t.Errorf("%s: build context %s does not exist", name, dir)
			}
			if !exists(repoPath(path.Join(dir, dockerfile))) {
				t.Errorf("%s: %s does not exist", name, path.Join(dir, dockerfile))
			}
		}
		for f, required := range s.envFiles() {
			if required && !exists(repoPath(f)) {
				t.Errorf("%s: required env_file %s does not exist (make it optional: .env is not in git)", name, f)
			}
		}
		for _, m := range s.mounts(t) {
			if isHostPath(m.source) {
				if strings.HasPrefix(m.source, "/") {
					t.Errorf("%s: %s is an absolute host path; mount from the repository", name, m.source)
				} else if !exists(repoPath(m.source)) {
					t.Errorf("%s: mounts %s, which does not exist", name, m.source)
				}
				continue
			}
			if _, ok := c.Volumes[m.source]; !ok {
				t.Errorf("%s: named volume %q is not declared under volumes:", name, m.source)
			}
		}
	}
	if !exists(repoPath(".env.example")) {
		t.Error(".env.example is missing: the compose file reads .env, made from it")
	}
}

// The services find each other by the names and ports the compose file gives
// them, and each configuration file is mounted where its service reads it.
func TestComposeWiring(t *testing.T) {
	c := loadCompose(t)

	// Prometheus reads its configuration from the mounted directory and
	// scrapes the rtstream service on its container port.
	prom := c.Services["prometheus"]
	configPath := "/etc/prometheus/prometheus.yml"
	for _, arg := range prom.Command {
		if v, ok := strings.CutPrefix(arg, "--config.file="); ok {
			configPath = v
		}
	}
	hostConfig, ok := prom.hostPathFor(t, configPath)
	if !ok {
		t.Fatalf("prometheus reads %s, which no bind mount provides", configPath)
	}
	if hostConfig != "observability/prometheus/prometheus.yml" {
		t.Errorf("prometheus reads %s from %s, want observability/prometheus/prometheus.yml", configPath, hostConfig)
	}
	var pc promConfig
	readYAML(t, hostConfig, &pc)
	for _, rf := range pc.RuleFiles {
		if !exists(repoPath(path.Join(path.Dir(hostConfig), rf))) {
			t.Errorf("prometheus.yml: rule file %s is not in %s", rf, path.Dir(hostConfig))
		}
	}
	if len(pc.RuleFiles) == 0 {
		t.Error("prometheus.yml loads no rule files")
	}
	var targets []string
	for _, sc := range pc.ScrapeConfigs {
		if sc.JobName != "rtstream" {
			continue
		}
		if sc.MetricsPath != "" && sc.MetricsPath != "/metrics" {
			t.Errorf("job rtstream: metrics_path %q, want /metrics", sc.MetricsPath)
		}
		for _, st := range sc.StaticConfigs {
			targets = append(targets, st.Targets...)
		}
	}
	if !slices.Contains(targets, "rtstream:8080") {
		t.Errorf("job rtstream targets %v: want rtstream:8080 (service name and container port)", targets)
	}

	// Grafana: provisioning and dashboards mounted where the provisioning
	// files say, and the datasource pointing at the prometheus service.
	g := c.Services["grafana"]
	prov, ok := g.hostPathFor(t, "/etc/grafana/provisioning")
	if !ok || prov != "observability/grafana/provisioning" {
		t.Errorf("grafana: /etc/grafana/provisioning comes from %q, want observability/grafana/provisioning", prov)
	}
	var dp struct {
		Providers []struct {
			Type    string `yaml:"type"`
			Options struct {
				Path string `yaml:"path"`
			} `yaml:"options"`
		} `yaml:"providers"`
	}
	readYAML(t, "observability/grafana/provisioning/dashboards/dashboards.yml", &dp)
	if len(dp.Providers) == 0 {
		t.Fatal("dashboards.yml: no providers")
	}
	for _, p := range dp.Providers {
		host, ok := g.hostPathFor(t, p.Options.Path)
		if !ok {
			t.Errorf("dashboards.yml loads %s, which no grafana bind mount provides", p.Options.Path)
			continue
		}
		if !exists(repoPath(path.Join(host, "rtstream.json"))) {
			t.Errorf("dashboards.yml loads %s (%s in the repository), which has no rtstream.json", p.Options.Path, host)
		}
	}
	if home := g.Environment["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]; home != "" {
		if host, ok := g.hostPathFor(t, home); !ok || !exists(repoPath(host)) {
			t.Errorf("GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH=%s is not a mounted file", home)
		}
	}

	var ds struct {
		Datasources []struct {
			UID  string `yaml:"uid"`
			Type string `yaml:"type"`
			URL  string `yaml:"url"`
		} `yaml:"datasources"`
	}
	readYAML(t, "observability/grafana/provisioning/datasources/prometheus.yml", &ds)
	if len(ds.Datasources) != 1 || ds.Datasources[0].Type != "prometheus" {
		t.Fatalf("datasources %+v: want one prometheus datasource", ds.Datasources)
	}
	u, err := url.Parse(ds.Datasources[0].URL)
	if err != nil {
		t.Fatalf("datasource url: %v", err)
	}
	if host, port, _ := net.SplitHostPort(u.Host); host != "prometheus" || port != "9090" {
		t.Errorf("datasource url %s: want the prometheus service on 9090", u)
	}
	if ds.Datasources[0].UID != dashboardDatasourceDefault(t) {
		t.Errorf("datasource uid %q is not the dashboard's default %q", ds.Datasources[0].UID, dashboardDatasourceDefault(t))
	}
}

// promConfig is the part of a Prometheus configuration the tests read.
type promConfig struct {
	RuleFiles     []string `yaml:"rule_files"`
	ScrapeConfigs []struct {
		JobName       string `yaml:"job_name"`
		MetricsPath   string `yaml:"metrics_path"`
		StaticConfigs []struct {
			Targets []string `yaml:"targets"`
		} `yaml:"static_configs"`
	} `yaml:"scrape_configs"`
}

func mapKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
