package rtstream_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestImportGraph keeps the package graph the DAG the design promises: the
// HTTP layer never reaches Kafka code, the Kafka layer never reaches HTTP
// code, and only cmd wires everything.
func TestImportGraph(t *testing.T) {
	const mod = "github.com/rtstream/rtstream"
	// allowed lists, for each package, the module packages it may import.
	allowed := map[string][]string{
		// The root is the domain: it imports nothing of the module.
		"": {},
		// The Kafka record format; its JSON fast paths use the scanner.
		"record":        {"", "jsonscan"},
		"jsonscan":      {},
		"observability": {},
		"problem":       {},
		"middleware":    {"", "observability", "problem"},
		"ratelimit":     {"problem"},
		"idempotency":   {""},
		// Quotas: counts in memory or Redis, nothing of HTTP or Kafka.
		"quota":     {},
		"stack":     {},
		"processor": {"jsonscan"}, // the number grammar its decoder shares
		"console":   {"problem"},
		"handlers":  {"", "console", "jsonscan", "middleware", "observability", "openapi", "problem", "processor", "quota", "record", "schema"},
		"openapi":   {},
		"fanout":    {"", "jsonscan", "record"},
		"pubsub":    {"", "jsonscan", "observability", "record"},
		"router":    {"", "jsonscan", "pubsub", "observability", "processor", "record"},
		"e2e":       {},
		"internal":  {}, // testenv: the tests' gate on real components
		// rtbench's crashmarks phase drives a router in its own process; its
		// tracing phases export to an OTLP receiver (internal/otlpsink).
		"benchmarks": {"", "internal", "jsonscan", "observability", "processor", "pubsub", "record", "router"},
		// The Go client speaks HTTP only; it shares the domain types.
		"client": {""},
		// Stream schemas: the JSON Schema library, and no project package.
		"schema": {},
	}
	out, err := exec.Command("go", "list", "-deps", "-test=false", "-f", "{{.ImportPath}} {{join .Deps \" \"}}", "./...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	seen := 0
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		fields := strings.Fields(line)
		pkg, ok := strings.CutPrefix(fields[0], mod)
		if !ok {
			continue
		}
		pkg = strings.TrimPrefix(pkg, "/")
		top, _, _ := strings.Cut(pkg, "/")
		if top == "cmd" {
			continue // the composition root may import anything
		}
		want, known := allowed[top]
		if !known {
			t.Errorf("package %q is not in the import rules; add it to this test", pkg)
			continue
		}
		seen++
		for _, dep := range fields[1:] {
			d, ok := strings.CutPrefix(dep, mod)
			if !ok {
				continue
			}
			d = strings.TrimPrefix(d, "/")
			dtop, _, _ := strings.Cut(d, "/")
			if dtop == top {
				continue
			}
			okDep := false
			for _, a := range want {
				if a == dtop {
					okDep = true
				}
			}
			if !okDep {
				t.Errorf("%s imports %s, which the import rules forbid", fields[0], dep)
			}
		}
	}
	if seen < 6 {
		t.Fatalf("checked only %d packages; is go list output as expected?", seen)
	}
}

// TestHandlersNeverImportKafka is the rule the design names first.
func TestHandlersNeverImportKafka(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "./handlers/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, dep := range strings.Fields(string(out)) {
		if strings.Contains(dep, "sarama") || strings.Contains(dep, "watermill-kafka") || strings.Contains(dep, "franz-go") {
			t.Errorf("handlers depend on Kafka code through %s", dep)
		}
	}
}
