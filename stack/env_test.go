package stack_test

import (
	"regexp"
	"slices"
	"strings"
	"testing"
)

// envReads matches where the config parser names the variables it reads:
// its settings table's names("A", "B"), getenv("A"), and the []string{"A",
// "B"} of the port variables.
var envReads = regexp.MustCompile(`(?:\b(?:names|getenv)\(|\[\]string\{)\s*((?:"[A-Z][A-Z0-9_]*"\s*,?\s*)+)`)

var quotedName = regexp.MustCompile(`"([A-Z][A-Z0-9_]*)"`)

// serverEnvVars are the variables cmd/rtstream/config.go reads, aliases
// included.
func serverEnvVars(t *testing.T) []string {
	t.Helper()
	src := string(readRepoFile(t, "cmd/rtstream/config.go"))
	var names []string
	for _, m := range envReads.FindAllStringSubmatch(src, -1) {
		for _, q := range quotedName.FindAllStringSubmatch(m[1], -1) {
			names = append(names, q[1])
		}
	}
	slices.Sort(names)
	names = slices.Compact(names)
	// A sanity floor, so a refactoring of config.go that this regexp no
	// longer understands fails here instead of checking nothing.
	for _, must := range []string{"KAFKA_BROKERS", "HTTP_ADDR", "API_KEYS", "METRICS_AUTH", "REDIS_URL", "RATE_LIMIT_RPS"} {
		if !slices.Contains(names, must) {
			t.Fatalf("found %v in cmd/rtstream/config.go, but not %s: update envReads", names, must)
		}
	}
	return names
}

// readmeEnvVars are the variables named in the first column of the README's
// configuration table.
func readmeEnvVars(t *testing.T) []string {
	t.Helper()
	readme := string(readRepoFile(t, "README.md"))
	_, section, ok := strings.Cut(readme, "\n## Configuration")
	if !ok {
		t.Fatal("README.md has no ## Configuration section")
	}
	if i := strings.Index(section, "\n## "); i >= 0 {
		section = section[:i]
	}
	name := regexp.MustCompile("`([A-Z][A-Z0-9_]*)`")
	var names []string
	for _, line := range strings.Split(section, "\n") {
		cells := strings.Split(line, "|")
		if len(cells) < 3 {
			continue
		}
		for _, m := range name.FindAllStringSubmatch(cells[1], -1) {
			names = append(names, m[1])
		}
	}
	if len(names) < 10 {
		t.Fatalf("README configuration table: found only %v", names)
	}
	return names
}

// envExample maps each name in .env.example to whether it is set (true) or
// only shown commented out (false).
func envExample(t *testing.T) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	assign := regexp.MustCompile(`^(#\s*)?([A-Z][A-Z0-9_]*)=(.*)$`)
	for n, line := range strings.Split(string(readRepoFile(t, ".env.example")), "\n") {
		line = strings.TrimSpace(line)
		m := assign.FindStringSubmatch(line)
		if m == nil {
			if line != "" && !strings.HasPrefix(line, "#") {
				t.Errorf(".env.example:%d: %q is neither KEY=value nor a comment", n+1, line)
			}
			continue
		}
		set := m[1] == ""
		if set {
			if _, dup := out[m[2]]; dup && out[m[2]] {
				t.Errorf(".env.example:%d: %s is set twice", n+1, m[2])
			}
			// The server's .env reader takes the rest of the line as the
			// value: a trailing comment would become part of it.
			if strings.Contains(m[3], " #") || strings.Contains(m[3], "\t#") {
				t.Errorf(".env.example:%d: comment after the value of %s", n+1, m[2])
			}
		}
		out[m[2]] = out[m[2]] || set
	}
	return out
}

func TestEnvExampleListsServerVariables(t *testing.T) {
	listed := envExample(t)
	for _, name := range serverEnvVars(t) {
		if _, ok := listed[name]; !ok {
			t.Errorf(".env.example does not list %s, which cmd/rtstream/config.go reads", name)
		}
	}
}

func TestEnvExampleListsReadmeVariables(t *testing.T) {
	listed := envExample(t)
	for _, name := range readmeEnvVars(t) {
		if _, ok := listed[name]; !ok {
			t.Errorf(".env.example does not list %s, from the README's configuration table", name)
		}
	}
}

// .env.example holds placeholders, never secrets.
func TestEnvExampleHasNoSecrets(t *testing.T) {
	data := string(readRepoFile(t, ".env.example"))
	m := regexp.MustCompile(`(?m)^API_KEYS=(.*)$`).FindStringSubmatch(data)
	if m == nil || m[1] != "change-me" {
		t.Errorf("API_KEYS in .env.example: got %q, want the placeholder change-me", m)
	}
	if strings.Contains(data, "BEGIN ") {
		t.Error(".env.example contains a PEM block")
	}
}
