package main

import (
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestParseConfig(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		check   func(t *testing.T, c config)
		wantErr string
	}{
		{"defaults", nil, func(t *testing.T, c config) {
			if len(c.Brokers) != 0 || c.HTTPAddr != ":8080" || c.TopicPrefix != "rtstream" || c.Partitions != 12 ||
				c.MaxBodyBytes != 1<<20 || c.MaxBatch != 1000 || c.Heartbeat != 15*time.Second || c.DataDir != "./data" {
				t.Errorf("defaults: %+v", c)
			}
		}, ""},
		{"brokers list", map[string]string{"KAFKA_BROKERS": " a:1, b:2 ,"}, func(t *testing.T, c config) {
			if !slices.Equal(c.Brokers, []string{"a:1", "b:2"}) {
				t.Errorf("brokers %v", c.Brokers)
			}
		}, ""},
		{"seed broker alias", map[string]string{"KAFKA_BROKER": "k:9092"}, func(t *testing.T, c config) {
			if !slices.Equal(c.Brokers, []string{"k:9092"}) {
				t.Errorf("brokers %v", c.Brokers)
			}
		}, ""},
		{"PORT", map[string]string{"PORT": "9000"}, func(t *testing.T, c config) {
			if c.HTTPAddr != ":9000" {
				t.Errorf("addr %q", c.HTTPAddr)
			}
		}, ""},
		{"seed WEBSOCKET_PORT", map[string]string{"WEBSOCKET_PORT": "9001"}, func(t *testing.T, c config) {
			if c.HTTPAddr != ":9001" {
				t.Errorf("addr %q", c.HTTPAddr)
			}
		}, ""},
		{"HTTP_ADDR wins", map[string]string{"HTTP_ADDR": "127.0.0.1:1", "PORT": "2"}, func(t *testing.T, c config) {
			if c.HTTPAddr != "127.0.0.1:1" {
				t.Errorf("addr %q", c.HTTPAddr)
			}
		}, ""},
		{"bad number", map[string]string{"MAX_BATCH": "many"}, nil, "MAX_BATCH"},
		{"bad duration", map[string]string{"SSE_HEARTBEAT": "soon"}, nil, "SSE_HEARTBEAT"},
		{"zero partitions", map[string]string{"TOPIC_PARTITIONS": "0"}, nil, "TOPIC_PARTITIONS"},
		{"idempotency defaults", nil, func(t *testing.T, c config) {
			if c.IdempotencyTTL != 24*time.Hour || c.IdempotencyMaxKeys != 10000 {
				t.Errorf("idempotency: TTL %v, max keys %d", c.IdempotencyTTL, c.IdempotencyMaxKeys)
			}
		}, ""},
		{"idempotency set", map[string]string{"IDEMPOTENCY_TTL": "1h", "IDEMPOTENCY_MAX_KEYS": "5"}, func(t *testing.T, c config) {
			if c.IdempotencyTTL != time.Hour || c.IdempotencyMaxKeys != 5 {
				t.Errorf("idempotency: TTL %v, max keys %d", c.IdempotencyTTL, c.IdempotencyMaxKeys)
			}
		}, ""},
		{"zero idempotency keys", map[string]string{"IDEMPOTENCY_MAX_KEYS": "0"}, nil, "IDEMPOTENCY_MAX_KEYS"},
		{"auth disabled with keys", map[string]string{"AUTH_DISABLED": "true", "API_KEYS": "k"}, nil, "AUTH_DISABLED=true cannot go with API_KEYS"},
		{"auth disabled with the older key name", map[string]string{"AUTH_DISABLED": "true", "API_KEY": "k"}, nil, "AUTH_DISABLED=true cannot go with"},
		{"auth disabled with a JWKS", map[string]string{"AUTH_DISABLED": "true", "JWT_JWKS_URL": "http://127.0.0.1:1/jwks"}, nil, "AUTH_DISABLED=true cannot go with"},
		{"auth disabled with a JWT key", map[string]string{"AUTH_DISABLED": "true", "JWT_PUBLIC_KEY": "/k.pem"}, nil, "AUTH_DISABLED=true cannot go with"},
		{"auth disabled alone", map[string]string{"AUTH_DISABLED": "true"}, func(t *testing.T, c config) {
			if !c.AuthDisabled {
				t.Error("AUTH_DISABLED=true alone: auth not disabled")
			}
		}, ""},
		{"a short session timeout brings the heartbeat down", map[string]string{"KAFKA_SESSION_TIMEOUT": "2s"}, func(t *testing.T, c config) {
			if c.KafkaSessionTimeout != 2*time.Second || c.KafkaHeartbeat*3 > c.KafkaSessionTimeout {
				t.Errorf("session %s, heartbeat %s", c.KafkaSessionTimeout, c.KafkaHeartbeat)
			}
		}, ""},
		{"a heartbeat set stays", map[string]string{"KAFKA_SESSION_TIMEOUT": "2s", "KAFKA_HEARTBEAT_INTERVAL": "1s"}, func(t *testing.T, c config) {
			if c.KafkaHeartbeat != time.Second { // pubsub.Config.Validate refuses it at start, naming both
				t.Errorf("heartbeat %s", c.KafkaHeartbeat)
			}
		}, ""},
		{"drain delay", map[string]string{"SHUTDOWN_DRAIN_DELAY": "3s"}, func(t *testing.T, c config) {
			if c.DrainDelay != 3*time.Second {
				t.Errorf("drain %s", c.DrainDelay)
			}
		}, ""},
		{"negative drain delay", map[string]string{"SHUTDOWN_DRAIN_DELAY": "-1s"}, nil, "SHUTDOWN_DRAIN_DELAY"},
		{"a CA file turns TLS on", map[string]string{"KAFKA_BROKERS": "k:9093", "KAFKA_TLS_CA_FILE": "/ca.crt"}, func(t *testing.T, c config) {
			if !c.KafkaTLS {
				t.Error("KAFKA_TLS_CA_FILE without KAFKA_TLS: TLS off")
			}
		}, ""},
		{"TLS with the embedded broker", map[string]string{"KAFKA_TLS": "true"}, nil, "need KAFKA_BROKERS"},
		{"SASL with the embedded broker", map[string]string{"KAFKA_SASL_MECHANISM": "PLAIN"}, nil, "need KAFKA_BROKERS"},
		{"keys alone", map[string]string{"API_KEYS": "a,b", "AUTH_DISABLED": "false"}, func(t *testing.T, c config) {
			if c.AuthDisabled || len(c.APIKeys) != 2 {
				t.Errorf("keys alone: disabled %v, keys %d", c.AuthDisabled, len(c.APIKeys))
			}
		}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := parseConfig(env(tt.env))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v; want one naming %s", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, c)
		})
	}
}

func TestLoadDotEnv(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, ".env")
	if err := os.WriteFile(p, []byte("# comment\nKAFKA_BROKERS=a:1\nexport LOG_LEVEL='debug'\n\nTOPIC_PREFIX=\"x\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := loadDotEnv(p)
	if err != nil {
		t.Fatal(err)
	}
	if got["KAFKA_BROKERS"] != "a:1" || got["LOG_LEVEL"] != "debug" || got["TOPIC_PREFIX"] != "x" {
		t.Fatalf("got %v", got)
	}
	if m, err := loadDotEnv(filepath.Join(dir, "missing")); err != nil || m != nil {
		t.Fatalf("missing file: %v, %v", m, err)
	}
	if err := os.WriteFile(p, []byte("NOEQUALS\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := loadDotEnv(p); err == nil {
		t.Fatal("malformed line accepted")
	}
}

// TestREADMEDefaults: every variable the server reads has a row in the
// README's configuration table, and each default the table shows, read back
// as that variable's value, gives the configuration of an empty environment:
// the defaults live in the components, the README shows the same ones.
func TestREADMEDefaults(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	shown := readmeDefaults(string(readme))
	want := defaultConfig()
	for _, st := range settings {
		name := st.names[0]
		def, ok := shown[name]
		if !ok {
			t.Errorf("%s has no row in the README's configuration table", name)
			continue
		}
		if def == "" {
			continue // "empty", "off", "generated ...": nothing to compare
		}
		got, err := parseConfig(env(map[string]string{name: def}))
		if err != nil {
			t.Errorf("%s: the README's default %q does not parse: %v", name, def, err)
			continue
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: the README's default %q is not the code's: %+v, want %+v", name, def, got, want)
		}
	}
}

// readmeDefaults maps each variable of the README's configuration table to
// its default as shown ("" when it shows none that can be read back).
func readmeDefaults(readme string) map[string]string {
	name := regexp.MustCompile("`([A-Z][A-Z0-9_]+)`")
	out := map[string]string{}
	for _, line := range strings.Split(readme, "\n") {
		cols := strings.Split(line, "|")
		if len(cols) < 4 || !strings.HasPrefix(strings.TrimSpace(cols[1]), "`") {
			continue
		}
		// Aliases are in parentheses; the defaults follow the names' order.
		first := regexp.MustCompile(`\([^)]*\)`).ReplaceAllString(cols[1], "")
		var names []string
		for _, m := range name.FindAllStringSubmatch(first, -1) {
			names = append(names, m[1])
		}
		defs := strings.Split(regexp.MustCompile(`\([^)]*\)`).ReplaceAllString(cols[2], ""), ",")
		for i, n := range names {
			def := ""
			if len(defs) == len(names) {
				def = strings.Trim(strings.TrimSpace(defs[i]), "`")
			}
			if strings.HasPrefix(def, "empty") || strings.HasPrefix(def, "generated") || def == "off" {
				def = ""
			}
			out[n] = def
		}
	}
	return out
}
