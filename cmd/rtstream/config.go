package main

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/rtstream/rtstream/handlers"
	"github.com/rtstream/rtstream/idempotency"
	"github.com/rtstream/rtstream/middleware"
	"github.com/rtstream/rtstream/observability"
	"github.com/rtstream/rtstream/pubsub"
	"github.com/rtstream/rtstream/quota"
	"github.com/rtstream/rtstream/ratelimit"
)

// config is everything the environment sets. Names follow the HTTP contract;
// the seed's older names are accepted as aliases.
type config struct {
	Brokers       []string
	DataDir       string
	HTTPAddr      string
	TopicPrefix   string
	Partitions    int
	Replication   int
	LogLevel      string
	LogFormat     string
	MaxBodyBytes  int64
	MaxBatch      int
	Heartbeat     time.Duration
	SendTimeout   time.Duration
	Throttle      int
	ShutdownGrace time.Duration
	// DrainDelay is how long a stopping instance answers /readyz 503
	// while still serving, before it stops taking connections.
	DrainDelay time.Duration
	PprofAddr  string
	// RouterProducers is how many producers the router publishes through.
	RouterProducers int
	// KafkaLinger is the producers' linger (negative: none).
	KafkaLinger time.Duration
	// The router's consumer group: its session timeout, heartbeat and
	// static member id (pubsub.Config).
	KafkaSessionTimeout, KafkaHeartbeat time.Duration
	KafkaInstanceID                     string
	// TLS and SASL to the brokers (pubsub.LoadTLS, pubsub.SASL).
	KafkaTLS                                             bool
	KafkaTLSCA, KafkaTLSCert, KafkaTLSKey                string
	KafkaSASLMechanism, KafkaSASLUser, KafkaSASLPassword string

	APIKeys      []string
	APIKeysFile  string
	AuthDisabled bool
	JWKSURL      string
	JWTPublicKey string
	JWTAudience  string
	JWTIssuer    string
	JWTTenant    string
	// TokenSecret signs subscribe tokens; TokenMaxTTL caps their life.
	TokenSecret string
	TokenMaxTTL time.Duration
	// KeysFilePoll is how often API_KEYS_FILE is checked for changes.
	KeysFilePoll time.Duration
	MetricsAuth  bool
	// MetricsDisabled turns rtstream's own instrumentation off (the runtime
	// metrics stay): the benchmark measures what collection costs with it.
	MetricsDisabled bool
	CORSOrigins     string

	ReadHeaderTimeout time.Duration
	ReadTimeout       time.Duration
	IdleTimeout       time.Duration
	MaxStreams        int
	// Quotas are every tenant's defaults (API_KEYS_FILE overrides them).
	Quotas quota.Limits

	RateLimitRPS   float64
	RateLimitBurst int
	RedisURL       string
	RedisTimeout   time.Duration
	TrustedProxies string

	// IdempotencyTTL is how long a send's answer is kept for retries with
	// the same Idempotency-Key; IdempotencyMaxKeys bounds the answers an
	// instance keeps without Redis.
	IdempotencyTTL     time.Duration
	IdempotencyMaxKeys int

	// SourceTopics are the glob patterns of the Kafka topics that source
	// streams may follow; none by default.
	SourceTopics []string

	// Tracing is OpenTelemetry's, from the standard OTEL_* variables.
	Tracing observability.TracingConfig
}

// loadDotEnv reads KEY=VALUE lines from path into a map; a missing file is no
// error. Values already in the environment win over the file.
func loadDotEnv(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := map[string]string{}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		line = strings.TrimPrefix(line, "export ")
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			return nil, fmt.Errorf("%s:%d: want KEY=VALUE", path, n)
		}
		v = strings.TrimSpace(v)
		if len(v) >= 2 && (v[0] == '"' || v[0] == '\'') && v[len(v)-1] == v[0] {
			v = v[1 : len(v)-1]
		}
		out[strings.TrimSpace(k)] = v
	}
	return out, sc.Err()
}

// Defaults of the process itself; every other default is its component's
// (handlers, pubsub, ratelimit, idempotency), read from there.
const (
	DefaultHTTPAddr          = ":8080"
	DefaultDataDir           = "./data"
	DefaultShutdownTimeout   = 30 * time.Second
	DefaultReadHeaderTimeout = 5 * time.Second
	DefaultIdleTimeout       = 120 * time.Second
	// DefaultRouterProducers is how many producers the router publishes
	// through: one in-flight request each (idempotence), so more than one
	// keeps results flowing while a request waits for its acks.
	DefaultRouterProducers = 4
	// DefaultKeysFilePoll is how often API_KEYS_FILE is checked: a removed
	// key's connections must close within 5 s.
	DefaultKeysFilePoll = time.Second
)

// defaultConfig is the configuration of an empty environment.
func defaultConfig() config {
	return config{
		DataDir: DefaultDataDir, HTTPAddr: DefaultHTTPAddr,
		LogLevel: observability.DefaultLogLevel, LogFormat: observability.DefaultLogFormat,
		TopicPrefix: pubsub.DefaultTopicPrefix, Partitions: pubsub.DefaultPartitions, Replication: pubsub.DefaultReplication,
		MaxBodyBytes: handlers.DefaultMaxBodyBytes, MaxBatch: handlers.DefaultMaxBatch,
		Heartbeat: handlers.DefaultHeartbeat, SendTimeout: handlers.DefaultSendTimeout,
		ShutdownGrace: DefaultShutdownTimeout, RouterProducers: DefaultRouterProducers,
		ReadHeaderTimeout: DefaultReadHeaderTimeout, ReadTimeout: handlers.DefaultReadTimeout, IdleTimeout: DefaultIdleTimeout,
		MaxStreams: handlers.DefaultMaxStreams,
		Quotas: quota.Limits{Streams: quota.DefaultStreams, HeldConnections: quota.DefaultHeldConnections,
			IngestBytesPerSecond: quota.DefaultIngestBytesPerSecond},
		RateLimitRPS: ratelimit.DefaultRPS, RateLimitBurst: ratelimit.DefaultBurst, RedisTimeout: ratelimit.DefaultRedisTimeout,
		IdempotencyTTL: idempotency.DefaultTTL, IdempotencyMaxKeys: idempotency.DefaultMaxKeys,
		JWTTenant: middleware.DefaultTenantClaim, TokenMaxTTL: middleware.DefaultSubscribeTokenMaxTTL,
		KeysFilePoll: DefaultKeysFilePoll, KafkaLinger: pubsub.DefaultLinger,
		KafkaSessionTimeout: pubsub.DefaultSessionTimeout, KafkaHeartbeat: pubsub.DefaultHeartbeatInterval,
		Tracing: observability.TracingConfig{ServiceName: observability.DefaultServiceName,
			Sampler: observability.DefaultSampler, Protocol: observability.DefaultProtocol},
	}
}

// setting is one environment variable: its names (the contract's first,
// then older aliases) and how it sets the configuration. The README's table
// shows the same defaults; TestREADMEDefaults compares them.
type setting struct {
	names []string
	set   func(c *config, v string) error
}

func names(n ...string) []string { return n }

// settings lists every variable the server reads.
var settings = slices.Concat(baseSettings, featureSettings)

// baseSettings are the variables of the server and its Kafka, auth and limits.
var baseSettings = []setting{
	{names("KAFKA_BROKERS", "KAFKA_BROKER"), func(c *config, v string) error { c.Brokers = splitList(v); return nil }},
	{names("DATA_DIR"), text(func(c *config) *string { return &c.DataDir })},
	{names("HTTP_ADDR"), text(func(c *config) *string { return &c.HTTPAddr })},
	{names("TOPIC_PREFIX"), text(func(c *config) *string { return &c.TopicPrefix })},
	{names("TOPIC_PARTITIONS"), count(func(c *config) *int { return &c.Partitions }, 1)},
	{names("TOPIC_REPLICATION"), count(func(c *config) *int { return &c.Replication }, 1)},
	{names("KAFKA_LINGER"), func(c *config, v string) error {
		d, err := time.ParseDuration(v)
		switch {
		case v == "0":
			c.KafkaLinger = -1 // none
		case err != nil || d < 0:
			return errors.New("want a duration such as 1ms, or 0 for none")
		case d == 0:
			c.KafkaLinger = -1
		default:
			c.KafkaLinger = d
		}
		return nil
	}},
	{names("LOG_LEVEL"), text(func(c *config) *string { return &c.LogLevel })},
	{names("LOG_FORMAT"), text(func(c *config) *string { return &c.LogFormat })},
	{names("MAX_BODY_BYTES"), count64(func(c *config) *int64 { return &c.MaxBodyBytes }, 1)},
	{names("MAX_BATCH"), count(func(c *config) *int { return &c.MaxBatch }, 1)},
	{names("SSE_HEARTBEAT"), duration(func(c *config) *time.Duration { return &c.Heartbeat })},
	{names("SEND_TIMEOUT"), duration(func(c *config) *time.Duration { return &c.SendTimeout })},
	{names("ROUTER_THROTTLE_PER_SECOND"), count(func(c *config) *int { return &c.Throttle }, 0)},
	{names("ROUTER_PRODUCERS"), count(func(c *config) *int { return &c.RouterProducers }, 1)},
	{names("SHUTDOWN_TIMEOUT"), duration(func(c *config) *time.Duration { return &c.ShutdownGrace })},
	{names("KAFKA_SESSION_TIMEOUT"), duration(func(c *config) *time.Duration { return &c.KafkaSessionTimeout })},
	{names("KAFKA_HEARTBEAT_INTERVAL"), duration(func(c *config) *time.Duration { return &c.KafkaHeartbeat })},
	{names("KAFKA_GROUP_INSTANCE_ID"), text(func(c *config) *string { return &c.KafkaInstanceID })},
	{names("KAFKA_TLS"), flag(func(c *config) *bool { return &c.KafkaTLS })},
	{names("KAFKA_TLS_CA_FILE"), text(func(c *config) *string { return &c.KafkaTLSCA })},
	{names("KAFKA_TLS_CERT_FILE"), text(func(c *config) *string { return &c.KafkaTLSCert })},
	{names("KAFKA_TLS_KEY_FILE"), text(func(c *config) *string { return &c.KafkaTLSKey })},
	{names("KAFKA_SASL_MECHANISM"), text(func(c *config) *string { return &c.KafkaSASLMechanism })},
	{names("KAFKA_SASL_USERNAME"), text(func(c *config) *string { return &c.KafkaSASLUser })},
	{names("KAFKA_SASL_PASSWORD"), text(func(c *config) *string { return &c.KafkaSASLPassword })},
	{names("SHUTDOWN_DRAIN_DELAY"), func(c *config, v string) error {
		d, err := time.ParseDuration(v)
		if v != "0" && (err != nil || d < 0) {
			return errors.New("want a duration such as 5s, or 0 for none")
		}
		c.DrainDelay = d
		return nil
	}},
	{names("PPROF_ADDR"), text(func(c *config) *string { return &c.PprofAddr })},
	{names("API_KEYS", "API_KEY"), func(c *config, v string) error { c.APIKeys = splitList(v); return nil }},
	{names("API_KEYS_FILE"), text(func(c *config) *string { return &c.APIKeysFile })},
	{names("AUTH_DISABLED"), flag(func(c *config) *bool { return &c.AuthDisabled })},
	{names("JWT_JWKS_URL"), text(func(c *config) *string { return &c.JWKSURL })},
	{names("JWT_PUBLIC_KEY"), text(func(c *config) *string { return &c.JWTPublicKey })},
	{names("JWT_AUDIENCE"), text(func(c *config) *string { return &c.JWTAudience })},
	{names("JWT_ISSUER"), text(func(c *config) *string { return &c.JWTIssuer })},
	{names("JWT_TENANT_CLAIM"), text(func(c *config) *string { return &c.JWTTenant })},
	{names("TOKEN_SECRET"), text(func(c *config) *string { return &c.TokenSecret })},
	{names("SUBSCRIBE_TOKEN_MAX_TTL"), duration(func(c *config) *time.Duration { return &c.TokenMaxTTL })},
	{names("API_KEYS_FILE_POLL"), duration(func(c *config) *time.Duration { return &c.KeysFilePoll })},
	{names("METRICS_AUTH"), flag(func(c *config) *bool { return &c.MetricsAuth })},
	{names("METRICS_DISABLED"), flag(func(c *config) *bool { return &c.MetricsDisabled })},
	{names("CORS_ORIGINS"), text(func(c *config) *string { return &c.CORSOrigins })},
	{names("READ_HEADER_TIMEOUT"), duration(func(c *config) *time.Duration { return &c.ReadHeaderTimeout })},
	{names("READ_TIMEOUT"), duration(func(c *config) *time.Duration { return &c.ReadTimeout })},
	{names("IDLE_TIMEOUT"), duration(func(c *config) *time.Duration { return &c.IdleTimeout })},
	{names("MAX_SSE_CONNECTIONS"), count(func(c *config) *int { return &c.MaxStreams }, 1)},
	{names("RATE_LIMIT_RPS"), rate(func(c *config) *float64 { return &c.RateLimitRPS })},
	{names("RATE_LIMIT_BURST"), count(func(c *config) *int { return &c.RateLimitBurst }, 1)},
	{names("REDIS_URL"), text(func(c *config) *string { return &c.RedisURL })},
	{names("REDIS_TIMEOUT"), duration(func(c *config) *time.Duration { return &c.RedisTimeout })},
	{names("TRUSTED_PROXIES"), text(func(c *config) *string { return &c.TrustedProxies })},
	{names("IDEMPOTENCY_TTL"), duration(func(c *config) *time.Duration { return &c.IdempotencyTTL })},
	{names("IDEMPOTENCY_MAX_KEYS"), count(func(c *config) *int { return &c.IdempotencyMaxKeys }, 1)},
}

// featureSettings are the variables of source streams, quotas and tracing
// (issues 15, 16, 20).
var featureSettings = []setting{
	{names("QUOTA_HELD_CONNECTIONS", "MAX_SSE_PER_KEY"), count(func(c *config) *int { return &c.Quotas.HeldConnections }, 1)},
	{names("QUOTA_STREAMS"), count(func(c *config) *int { return &c.Quotas.Streams }, 1)},
	{names("QUOTA_INGEST_BYTES_PER_SECOND"), count64(func(c *config) *int64 { return &c.Quotas.IngestBytesPerSecond }, 0)},
	{names("SOURCE_TOPICS"), func(c *config, v string) error {
		c.SourceTopics = splitList(v)
		for _, p := range c.SourceTopics {
			if _, err := path.Match(p, ""); err != nil {
				return fmt.Errorf("pattern %q: %w", p, err)
			}
		}
		return nil
	}},
	// OpenTelemetry's own names: the SDK reads the process environment
	// only, so the ones that decide what rtstream does are read here, .env
	// included, and checked before the start.
	{names("OTEL_SDK_DISABLED"), flag(func(c *config) *bool { return &c.Tracing.SDKDisabled })},
	{names("OTEL_TRACES_EXPORTER"), text(func(c *config) *string { return &c.Tracing.Exporter })},
	{names("OTEL_EXPORTER_OTLP_ENDPOINT"), text(func(c *config) *string { return &c.Tracing.Endpoint })},
	{names("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"), text(func(c *config) *string { return &c.Tracing.TracesEndpoint })},
	{names("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"), text(func(c *config) *string { return &c.Tracing.Protocol })},
	{names("OTEL_SERVICE_NAME"), text(func(c *config) *string { return &c.Tracing.ServiceName })},
	{names("OTEL_TRACES_SAMPLER"), text(func(c *config) *string { return &c.Tracing.Sampler })},
	{names("OTEL_TRACES_SAMPLER_ARG"), text(func(c *config) *string { return &c.Tracing.SamplerArg })},
}

// parseConfig reads the configuration through getenv: defaults first, then
// every variable set, then the checks across variables.
func parseConfig(getenv func(string) string) (config, error) {
	c := defaultConfig()
	var errs []string
	for _, st := range settings {
		for _, name := range st.names {
			v := strings.TrimSpace(getenv(name))
			if v == "" {
				continue
			}
			if err := st.set(&c, v); err != nil {
				errs = append(errs, fmt.Sprintf("%s=%q: %v", name, v, err))
			}
			break
		}
	}
	if strings.TrimSpace(getenv("HTTP_ADDR")) == "" {
		for _, name := range []string{"PORT", "WEBSOCKET_PORT"} {
			if port := strings.TrimSpace(getenv(name)); port != "" {
				c.HTTPAddr = net.JoinHostPort("", port)
				break
			}
		}
	}
	if c.AuthDisabled && (len(c.APIKeys) > 0 || c.APIKeysFile != "" || c.JWKSURL != "" || c.JWTPublicKey != "") {
		// Which one was meant? Serving every route without a key when
		// the operator also set keys would be the worse guess.
		errs = append(errs, "AUTH_DISABLED=true cannot go with API_KEYS, API_KEYS_FILE, JWT_JWKS_URL or JWT_PUBLIC_KEY: unset AUTH_DISABLED to require credentials, or the others to run without auth")
	}
	if c.KafkaHeartbeat*3 > c.KafkaSessionTimeout && strings.TrimSpace(getenv("KAFKA_HEARTBEAT_INTERVAL")) == "" {
		// A short session timeout brings the default heartbeat down with it.
		c.KafkaHeartbeat = c.KafkaSessionTimeout / 3
	}
	if c.KafkaTLSCA != "" || c.KafkaTLSCert != "" {
		c.KafkaTLS = true
	}
	if (c.KafkaTLS || c.KafkaSASLMechanism != "") && len(c.Brokers) == 0 {
		errs = append(errs, "KAFKA_TLS and KAFKA_SASL_* need KAFKA_BROKERS: the embedded broker speaks neither")
	}
	if c.TokenSecret != "" && len(c.TokenSecret) < 32 {
		// Checked here, not by the setter, whose error would quote it.
		errs = append(errs, "TOKEN_SECRET: want at least 32 bytes, such as the output of openssl rand -hex 32")
	}
	if err := c.Tracing.Validate(); err != nil && c.Tracing.Enabled() {
		errs = append(errs, strings.ReplaceAll(err.Error(), "\n", "; "))
	}
	if len(errs) > 0 {
		return c, fmt.Errorf("configuration: %s", strings.Join(errs, "; "))
	}
	return c, nil
}

func splitList(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

func text(field func(*config) *string) func(*config, string) error {
	return func(c *config, v string) error { *field(c) = v; return nil }
}

func count(field func(*config) *int, least int) func(*config, string) error {
	return func(c *config, v string) error {
		n, err := strconv.Atoi(v)
		if err != nil || n < least {
			return fmt.Errorf("want a whole number ≥ %d", least)
		}
		*field(c) = n
		return nil
	}
}

func count64(field func(*config) *int64, least int64) func(*config, string) error {
	return func(c *config, v string) error {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < least {
			return fmt.Errorf("want a whole number ≥ %d", least)
		}
		*field(c) = n
		return nil
	}
}

func rate(field func(*config) *float64) func(*config, string) error {
	return func(c *config, v string) error {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || f <= 0 {
			return errors.New("want a number > 0")
		}
		*field(c) = f
		return nil
	}
}

func duration(field func(*config) *time.Duration) func(*config, string) error {
	return func(c *config, v string) error {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return errors.New("want a duration such as 15s")
		}
		*field(c) = d
		return nil
	}
}

func flag(field func(*config) *bool) func(*config, string) error {
	return func(c *config, v string) error {
		switch strings.ToLower(v) {
		case "0", "false", "no", "off":
			*field(c) = false
		case "1", "true", "yes", "on":
			*field(c) = true
		default:
			return errors.New("want true or false")
		}
		return nil
	}
}
