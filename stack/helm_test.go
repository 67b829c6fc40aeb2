package stack_test

import (
	"bytes"
	"errors"
	"io"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/rtstream/rtstream/internal/testenv"
)

// k8sTools are the paths scripts/k8s.sh installed helm and kubeconform to.
func k8sTools(t *testing.T) map[string]string {
	t.Helper()
	out, err := exec.Command(repoPath("scripts/k8s.sh"), "env").Output()
	if err != nil {
		testenv.Missing(t, "helm, kubeconform and the Kubernetes schemas are not installed: run scripts/k8s.sh install")
	}
	tools := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		k, v, _ := strings.Cut(line, "=")
		tools[k] = v
	}
	return tools
}

// TestHelmChartLintsAndValidates runs scripts/k8s.sh check: helm lint
// --strict and kubeconform -strict on the chart rendered with every CI
// values file, and the plain manifests in deploy/k8s/ equal to the chart's.
func TestHelmChartLintsAndValidates(t *testing.T) {
	k8sTools(t)
	cmd := exec.Command(repoPath("scripts/k8s.sh"), "check")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("scripts/k8s.sh check: %v\n%s", err, out.String())
	}
}

// renderChart renders the chart with a values file and returns its
// documents by kind.
func renderChart(t *testing.T, helm, values string) map[string]map[string]any {
	t.Helper()
	out, err := exec.Command(helm, "template", "rt", repoPath("deploy/helm/rtstream"), "-f", repoPath(values)).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("helm template -f %s: %v\n%s", values, err, ee.Stderr)
		}
		t.Fatal(err)
	}
	docs := map[string]map[string]any{}
	dec := yaml.NewDecoder(bytes.NewReader(out))
	for {
		var doc map[string]any
		if err := dec.Decode(&doc); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("rendered YAML: %v", err)
		}
		if doc != nil {
			docs[doc["kind"].(string)] = doc
		}
	}
	return docs
}

// at walks a parsed YAML document: map keys, and list indexes as "0".
func at(t *testing.T, v any, path ...string) any {
	t.Helper()
	for _, p := range path {
		switch n := v.(type) {
		case map[string]any:
			v = n[p]
		case []any:
			i := int(p[0] - '0')
			if i >= len(n) {
				t.Fatalf("%v: index %s out of range", path, p)
			}
			v = n[i]
		default:
			t.Fatalf("%v: no %q in %T", path, p, v)
		}
	}
	return v
}

// containerEnv is the container's environment: name to value, or to
// "from:<kind>:<detail>" for values taken from elsewhere.
func containerEnv(t *testing.T, c any) map[string]string {
	env := map[string]string{}
	for _, e := range at(t, c, "env").([]any) {
		m := e.(map[string]any)
		name := m["name"].(string)
		switch {
		case m["value"] != nil:
			env[name] = m["value"].(string)
		case at(t, m, "valueFrom", "secretKeyRef") != nil:
			env[name] = "from:secret:" + at(t, m, "valueFrom", "secretKeyRef", "key").(string)
		case at(t, m, "valueFrom", "fieldRef") != nil:
			env[name] = "from:field:" + at(t, m, "valueFrom", "fieldRef", "fieldPath").(string)
		}
	}
	return env
}

// TestHelmChartDeployment checks what the chart promises a platform team,
// on the rendered manifests: probes on /healthz and /readyz, a preStop
// pause then the server's own drain within the grace period, a non-root
// read-only container, credentials from a Secret, every variable one the
// server reads, and the optional parts switched by values.
func TestHelmChartDeployment(t *testing.T) {
	helm := k8sTools(t)["HELM"]
	known := serverEnvVars(t)
	for _, tc := range []struct {
		values                            string
		hpa, monitor, static              bool
		preStop, drain, timeout, replicas int
		kafka                             map[string]string // env the Kafka connection needs, "" for absent
		mounts                            []string          // where the Kafka Secrets are mounted
	}{
		{values: "deploy/helm/rtstream/ci/default-values.yaml", hpa: true, preStop: 5, drain: 0, timeout: 20,
			kafka: map[string]string{"KAFKA_TLS": "", "KAFKA_SASL_MECHANISM": ""}},
		{values: "deploy/helm/rtstream/ci/strimzi-values.yaml", monitor: true, static: true, preStop: 3, drain: 2, timeout: 30, replicas: 4,
			kafka: map[string]string{"KAFKA_TLS": "true", "KAFKA_TLS_CA_FILE": "/etc/rtstream/kafka-ca/ca.crt", "KAFKA_TLS_CERT_FILE": "",
				"KAFKA_SASL_MECHANISM": "SCRAM-SHA-512", "KAFKA_SASL_USERNAME": "rtstream", "KAFKA_SASL_PASSWORD": "from:secret:password"},
			mounts: []string{"/etc/rtstream/kafka-ca"}},
		{values: "deploy/helm/rtstream/ci/mtls-values.yaml", hpa: true, preStop: 5, drain: 0, timeout: 20,
			kafka: map[string]string{"KAFKA_TLS": "true", "KAFKA_TLS_CA_FILE": "/etc/rtstream/kafka-ca/ca.crt",
				"KAFKA_TLS_CERT_FILE": "/etc/rtstream/kafka-client/user.crt", "KAFKA_TLS_KEY_FILE": "/etc/rtstream/kafka-client/user.key", "KAFKA_SASL_MECHANISM": ""},
			mounts: []string{"/etc/rtstream/kafka-ca", "/etc/rtstream/kafka-client"}},
	} {
		t.Run(tc.values, func(t *testing.T) {
			docs := renderChart(t, helm, tc.values)
			pod := at(t, docs["Deployment"], "spec", "template", "spec")
			c := at(t, pod, "containers", "0")
			if got := at(t, c, "readinessProbe", "httpGet", "path"); got != "/readyz" {
				t.Errorf("readiness probe %v", got)
			}
			if got := at(t, c, "livenessProbe", "httpGet", "path"); got != "/healthz" {
				t.Errorf("liveness probe %v", got)
			}
			if got := at(t, c, "lifecycle", "preStop", "sleep", "seconds"); got != tc.preStop {
				t.Errorf("preStop sleep %v, want %d", got, tc.preStop)
			}
			if got, min := at(t, pod, "terminationGracePeriodSeconds").(int), tc.preStop+tc.drain+tc.timeout; got <= min {
				t.Errorf("grace period %d s, not over preStop + drain + timeout = %d s", got, min)
			}
			if at(t, pod, "securityContext", "runAsNonRoot") != true || at(t, c, "securityContext", "readOnlyRootFilesystem") != true ||
				at(t, c, "securityContext", "allowPrivilegeEscalation") != false {
				t.Errorf("security contexts: pod %v, container %v", at(t, pod, "securityContext"), at(t, c, "securityContext"))
			}
			env := containerEnv(t, c)
			for name, want := range map[string]string{"TOKEN_SECRET": "from:secret:token-secret", "API_KEYS_FILE": "/etc/rtstream/api-keys.json",
				"SHUTDOWN_TIMEOUT": "", "SHUTDOWN_DRAIN_DELAY": "", "KAFKA_BROKERS": ""} {
				if got, ok := env[name]; !ok || (want != "" && got != want) {
					t.Errorf("env %s = %q (set %v), want %q", name, got, ok, want)
				}
			}
			if got := env["SHUTDOWN_TIMEOUT"]; got != strconv.Itoa(tc.timeout)+"s" {
				t.Errorf("SHUTDOWN_TIMEOUT %q, want %ds", got, tc.timeout)
			}
			for name := range env {
				if !slices.Contains(known, name) {
					t.Errorf("the chart sets %s, which the server does not read", name)
				}
			}
			for name, want := range tc.kafka {
				if got := env[name]; got != want {
					t.Errorf("env %s = %q, want %q", name, got, want)
				}
			}
			var mounted []string
			for _, m := range at(t, c, "volumeMounts").([]any) {
				if p := m.(map[string]any)["mountPath"].(string); strings.Contains(p, "kafka") {
					mounted = append(mounted, p)
				}
			}
			if !slices.Equal(mounted, tc.mounts) {
				t.Errorf("Kafka Secrets mounted at %v, want %v", mounted, tc.mounts)
			}
			if got := env["KAFKA_GROUP_INSTANCE_ID"]; (got == "from:field:metadata.name") != tc.static {
				t.Errorf("KAFKA_GROUP_INSTANCE_ID %q with staticMembership %v", got, tc.static)
			}
			_, hasHPA := docs["HorizontalPodAutoscaler"]
			_, hasMonitor := docs["ServiceMonitor"]
			if hasHPA != tc.hpa || hasMonitor != tc.monitor || docs["PodDisruptionBudget"] == nil || docs["Service"] == nil {
				t.Errorf("kinds rendered: %v", keys(docs))
			}
			if replicas := at(t, docs["Deployment"], "spec", "replicas"); (replicas == nil) != tc.hpa || (!tc.hpa && replicas != tc.replicas) {
				t.Errorf("replicas %v with the autoscaler %v", replicas, tc.hpa)
			}
			if tc.monitor {
				ep := at(t, docs["ServiceMonitor"], "spec", "endpoints", "0")
				if at(t, ep, "port") != "http" || at(t, ep, "path") != "/metrics" {
					t.Errorf("ServiceMonitor endpoint %v", ep)
				}
			}
		})
	}
}

func keys(m map[string]map[string]any) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}
