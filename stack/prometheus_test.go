package stack_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

const promDir = "observability/prometheus"

// The alerts the operations of the service need; each has a unit test.
var requiredAlerts = []string{
	"RtstreamHighErrorRatio",         // 5xx ratio of the API
	"RtstreamSendLatencyHigh",        // p99 of POST events
	"RtstreamConsumerLagGrowing",     // lag large and growing
	"RtstreamPoisonMessages",         // records sent to the poison topic
	"RtstreamNoReadyInstance",        // sum(rtstream_ready) < 1 or absent
	"RtstreamRateLimitStoreDegraded", // Redis store failing
	"RtstreamTenantNearQuota",        // a tenant over 90% of a count quota
}

func TestAlertRulesComplete(t *testing.T) {
	var alerts []string
	for _, g := range loadRules(t).Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				continue
			}
			alerts = append(alerts, r.Alert)
			if d, err := time.ParseDuration(r.For); err != nil || d <= 0 {
				t.Errorf("%s: for %q: want a hold time, so one bad evaluation does not page", r.Alert, r.For)
			}
			if sev := r.Labels["severity"]; sev != "critical" && sev != "warning" {
				t.Errorf("%s: severity %q, want critical or warning", r.Alert, sev)
			}
			if r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
				t.Errorf("%s: want summary and description annotations", r.Alert)
			}
		}
	}
	for _, a := range requiredAlerts {
		if !slices.Contains(alerts, a) {
			t.Errorf("rules.yml has no alert %s", a)
		}
	}

	// rules_test.yml has, for every alert, a case where it fires and one
	// where it must stay quiet.
	var tests struct {
		Tests []struct {
			Name           string `yaml:"name"`
			AlertRuleTests []struct {
				Alertname string `yaml:"alertname"`
				ExpAlerts []any  `yaml:"exp_alerts"`
			} `yaml:"alert_rule_test"`
		} `yaml:"tests"`
	}
	readYAML(t, promDir+"/rules_test.yml", &tests)
	fires, quiet := map[string]bool{}, map[string]bool{}
	for _, tc := range tests.Tests {
		for _, at := range tc.AlertRuleTests {
			if len(at.ExpAlerts) > 0 {
				fires[at.Alertname] = true
			} else {
				quiet[at.Alertname] = true
			}
		}
	}
	for _, a := range alerts {
		if !fires[a] {
			t.Errorf("rules_test.yml: no case where %s fires", a)
		}
		if !quiet[a] {
			t.Errorf("rules_test.yml: no case where %s stays quiet", a)
		}
	}
}

// promtool accepts the configuration and the rules, and the rules pass their
// unit tests.
func TestPromtool(t *testing.T) {
	promtool := needTool(t, "promtool")
	for _, args := range [][]string{
		{"check", "config", "prometheus.yml"},
		{"check", "rules", "rules.yml"},
		{"test", "rules", "rules_test.yml"},
	} {
		cmd := exec.Command(promtool, args...)
		cmd.Dir = repoPath(promDir)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Errorf("promtool %v: %v\n%s", args, err, out)
		}
	}
}

// promAPI is the envelope of Prometheus' HTTP API.
type promAPI struct {
	Status    string          `json:"status"`
	Error     string          `json:"error"`
	ErrorType string          `json:"errorType"`
	Data      json.RawMessage `json:"data"`
}

func promGet(base, path string, data any) error {
	resp, err := httpClient.Get(base + path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	var env promAPI
	if err := json.Unmarshal(body, &env); err != nil {
		return fmt.Errorf("GET %s: %d %.200s", path, resp.StatusCode, body)
	}
	if env.Status != "success" {
		return fmt.Errorf("GET %s: %s: %s", path, env.ErrorType, env.Error)
	}
	if data == nil {
		return nil
	}
	return json.Unmarshal(env.Data, data)
}

// instantQuery evaluates expr now and returns the values of its series.
func instantQuery(base, expr string) ([]float64, error) {
	var data struct {
		ResultType string `json:"resultType"`
		Result     []struct {
			Value [2]any `json:"value"`
		} `json:"result"`
	}
	if err := promGet(base, "/api/v1/query?query="+url.QueryEscape(expr), &data); err != nil {
		return nil, err
	}
	var out []float64
	for _, r := range data.Result {
		s, _ := r.Value[1].(string)
		v, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return nil, fmt.Errorf("%s: value %v", expr, r.Value)
		}
		out = append(out, v)
	}
	return out, nil
}

// startPrometheus runs Debian's prometheus binary scraping target every
// second with the repository's alert rules loaded, and returns its base URL.
func startPrometheus(t *testing.T, bin, target string) string {
	t.Helper()
	dir := t.TempDir()
	rules := readRepoFile(t, promDir+"/rules.yml")
	if err := os.WriteFile(filepath.Join(dir, "rules.yml"), rules, 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := yaml.Marshal(map[string]any{
		"global": map[string]any{
			"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s",
		},
		"rule_files": []string{"rules.yml"},
		"scrape_configs": []any{map[string]any{
			"job_name":       "rtstream",
			"static_configs": []any{map[string]any{"targets": []string{target}}},
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), cfg, 0o644); err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	logPath := filepath.Join(dir, "prometheus.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command(bin,
		"--config.file="+filepath.Join(dir, "prometheus.yml"),
		"--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr,
	)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting prometheus: %v", err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		select {
		case <-exited:
		default:
			_ = cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-exited:
			case <-time.After(15 * time.Second):
				_ = cmd.Process.Kill()
				<-exited
			}
		}
		if t.Failed() {
			log, _ := os.ReadFile(logPath)
			t.Logf("---- prometheus log (%s) ----\n%s", logPath, log)
		}
	})

	base := "http://" + addr
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case <-exited:
			t.Fatalf("prometheus exited during start-up: %v", cmd.ProcessState)
		default:
		}
		if resp, err := httpClient.Get(base + "/-/ready"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return base
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("prometheus not ready within 30s")
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// A real Prometheus scrapes the real server: the request counter arrives,
// the target is up, every alert rule evaluates without error, and every
// dashboard query runs.
func TestPrometheusScrapesServer(t *testing.T) {
	bin := needTool(t, "prometheus")
	s := startServer(t)
	base := startPrometheus(t, bin, s.addr)
	s.exercise(t)

	deadline := time.Now().Add(60 * time.Second)
	for {
		vals, err := instantQuery(base, "sum(rtstream_http_requests_total)")
		if err != nil {
			t.Fatal(err)
		}
		if len(vals) == 1 && vals[0] > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("sum(rtstream_http_requests_total) is %v after 60s, want > 0", vals)
		}
		time.Sleep(500 * time.Millisecond)
	}

	var targets struct {
		ActiveTargets []struct {
			Health    string `json:"health"`
			LastError string `json:"lastError"`
			ScrapeURL string `json:"scrapeUrl"`
		} `json:"activeTargets"`
	}
	if err := promGet(base, "/api/v1/targets", &targets); err != nil {
		t.Fatal(err)
	}
	if len(targets.ActiveTargets) != 1 || targets.ActiveTargets[0].Health != "up" {
		t.Errorf("targets %+v: want the server, up", targets.ActiveTargets)
	}

	// Rules are evaluated every second; wait until each has been once.
	type ruleState struct {
		Name           string `json:"name"`
		Health         string `json:"health"`
		LastError      string `json:"lastError"`
		LastEvaluation string `json:"lastEvaluation"`
	}
	var states []ruleState
	deadline = time.Now().Add(30 * time.Second)
	for {
		var rules struct {
			Groups []struct {
				Rules []ruleState `json:"rules"`
			} `json:"groups"`
		}
		if err := promGet(base, "/api/v1/rules", &rules); err != nil {
			t.Fatal(err)
		}
		states = states[:0]
		pending := 0
		for _, g := range rules.Groups {
			for _, r := range g.Rules {
				states = append(states, r)
				if r.Health != "ok" && r.Health != "err" {
					pending++
				}
			}
		}
		if (pending == 0 && len(states) > 0) || time.Now().After(deadline) {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	var loaded []string
	for _, r := range states {
		loaded = append(loaded, r.Name)
		if r.Health != "ok" {
			t.Errorf("rule %s: health %q %s", r.Name, r.Health, r.LastError)
		}
	}
	for _, a := range requiredAlerts {
		if !slices.Contains(loaded, a) {
			t.Errorf("prometheus did not load alert %s (loaded %v)", a, loaded)
		}
	}

	for _, q := range dashboardQueries(t) {
		if _, err := instantQuery(base, grafanaVars.Replace(q.expr)); err != nil {
			t.Errorf("%s: %v", q.where, err)
		}
	}
	vals, err := instantQuery(base, `sum(rtstream_ready)`)
	if err != nil || len(vals) != 1 || vals[0] != 1 {
		t.Errorf("sum(rtstream_ready) = %v (%v), want 1 for one ready server", vals, err)
	}
}
