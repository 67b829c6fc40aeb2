package main

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"
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
	PprofAddr     string
	// RouterProducers is how many producers the router publishes through.
	RouterProducers int

	APIKeys      []string
	AuthDisabled bool
	JWKSURL      string
	JWTPublicKey string
	JWTAudience  string
	JWTIssuer    string
	MetricsAuth  bool
	// MetricsDisabled turns rtstream's own instrumentation off (the runtime
	// metrics stay): the benchmark measures what collection costs with it.
	MetricsDisabled bool
	CORSOrigins     string

	ReadHeaderTimeout time.Duration
	ReadTimeout       time.Duration
	IdleTimeout       time.Duration
	MaxStreams        int
	MaxStreamsPerKey  int

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

// parseConfig reads the configuration through getenv.
func parseConfig(getenv func(string) string) (config, error) {
	var errs []string
	first := func(names ...string) string {
		for _, n := range names {
			if v := strings.TrimSpace(getenv(n)); v != "" {
				return v
			}
		}
		return ""
	}
	intVar := func(name string, def int) int {
		v := getenv(name)
		if v == "" {
			return def
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			errs = append(errs, fmt.Sprintf("%s=%q: want a whole number ≥ 0", name, v))
			return def
		}
		return n
	}
	durVar := func(name string, def time.Duration) time.Duration {
		v := getenv(name)
		if v == "" {
			return def
		}
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			errs = append(errs, fmt.Sprintf("%s=%q: want a duration such as 15s", name, v))
			return def
		}
		return d
	}

	c := config{
		DataDir:         first("DATA_DIR"),
		TopicPrefix:     first("TOPIC_PREFIX"),
		Partitions:      intVar("TOPIC_PARTITIONS", 12),
		Replication:     intVar("TOPIC_REPLICATION", 1),
		LogLevel:        first("LOG_LEVEL"),
		LogFormat:       first("LOG_FORMAT"),
		MaxBodyBytes:    int64(intVar("MAX_BODY_BYTES", 1<<20)),
		MaxBatch:        intVar("MAX_BATCH", 1000),
		Heartbeat:       durVar("SSE_HEARTBEAT", 15*time.Second),
		SendTimeout:     durVar("SEND_TIMEOUT", 10*time.Second),
		Throttle:        intVar("ROUTER_THROTTLE_PER_SECOND", 0),
		ShutdownGrace:   durVar("SHUTDOWN_TIMEOUT", 30*time.Second),
		PprofAddr:       first("PPROF_ADDR"),
		RouterProducers: intVar("ROUTER_PRODUCERS", 4),
	}
	boolVar := func(name string) bool {
		switch strings.ToLower(strings.TrimSpace(getenv(name))) {
		case "", "0", "false", "no", "off":
			return false
		case "1", "true", "yes", "on":
			return true
		default:
			errs = append(errs, fmt.Sprintf("%s=%q: want true or false", name, getenv(name)))
			return false
		}
	}
	for _, k := range strings.Split(first("API_KEYS", "API_KEY"), ",") {
		if k = strings.TrimSpace(k); k != "" {
			c.APIKeys = append(c.APIKeys, k)
		}
	}
	c.AuthDisabled = boolVar("AUTH_DISABLED")
	c.JWKSURL = first("JWT_JWKS_URL")
	c.JWTPublicKey = getenv("JWT_PUBLIC_KEY")
	c.JWTAudience = first("JWT_AUDIENCE")
	c.JWTIssuer = first("JWT_ISSUER")
	c.MetricsAuth = boolVar("METRICS_AUTH")
	c.MetricsDisabled = boolVar("METRICS_DISABLED")
	c.CORSOrigins = first("CORS_ORIGINS")
	c.ReadHeaderTimeout = durVar("READ_HEADER_TIMEOUT", 5*time.Second)
	c.ReadTimeout = durVar("READ_TIMEOUT", 30*time.Second)
	c.IdleTimeout = durVar("IDLE_TIMEOUT", 120*time.Second)
	c.RateLimitRPS = 100
	if v := getenv("RATE_LIMIT_RPS"); v != "" {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || f <= 0 {
			errs = append(errs, fmt.Sprintf("RATE_LIMIT_RPS=%q: want a number > 0", v))
		} else {
			c.RateLimitRPS = f
		}
	}
	c.RateLimitBurst = intVar("RATE_LIMIT_BURST", 200)
	c.RedisURL = first("REDIS_URL")
	c.RedisTimeout = durVar("REDIS_TIMEOUT", 100*time.Millisecond)
	c.TrustedProxies = first("TRUSTED_PROXIES")
	c.IdempotencyTTL = durVar("IDEMPOTENCY_TTL", 24*time.Hour)
	c.IdempotencyMaxKeys = intVar("IDEMPOTENCY_MAX_KEYS", 10000)
	c.MaxStreams = intVar("MAX_SSE_CONNECTIONS", 10000)
	c.MaxStreamsPerKey = intVar("MAX_SSE_PER_KEY", 100)
	if c.DataDir == "" {
		c.DataDir = "./data"
	}
	if c.TopicPrefix == "" {
		c.TopicPrefix = "rtstream"
	}
	for _, b := range strings.Split(first("KAFKA_BROKERS", "KAFKA_BROKER"), ",") {
		if b = strings.TrimSpace(b); b != "" {
			c.Brokers = append(c.Brokers, b)
		}
	}
	c.HTTPAddr = first("HTTP_ADDR")
	if c.HTTPAddr == "" {
		c.HTTPAddr = ":8080"
		if port := first("PORT", "WEBSOCKET_PORT"); port != "" {
			c.HTTPAddr = net.JoinHostPort("", port)
		}
	}
	if c.Partitions < 1 {
		errs = append(errs, "TOPIC_PARTITIONS must be at least 1")
	}
	if c.Replication < 1 {
		errs = append(errs, "TOPIC_REPLICATION must be at least 1")
	}
	if c.IdempotencyMaxKeys < 1 {
		errs = append(errs, "IDEMPOTENCY_MAX_KEYS must be at least 1")
	}
	if c.MaxBodyBytes < 1 || c.MaxBatch < 1 {
		errs = append(errs, "MAX_BODY_BYTES and MAX_BATCH must be at least 1")
	}
	if c.AuthDisabled && (len(c.APIKeys) > 0 || c.JWKSURL != "" || c.JWTPublicKey != "") {
		// Which one was meant? Serving every route without a key when
		// the operator also set keys would be the worse guess.
		errs = append(errs, "AUTH_DISABLED=true cannot go with API_KEYS, JWT_JWKS_URL or JWT_PUBLIC_KEY: unset AUTH_DISABLED to require credentials, or the others to run without auth")
	}
	if len(errs) > 0 {
		return c, fmt.Errorf("configuration: %s", strings.Join(errs, "; "))
	}
	return c, nil
}
