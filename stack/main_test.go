// Package stack_test checks the deployment and observability files against
// each other and against the real server: docker-compose.yml, the Dockerfile,
// .env.example, the Prometheus configuration and alert rules, and the Grafana
// dashboard. It parses the files (no Docker is needed), runs promtool, and
// starts the built rtstream binary, with Prometheus scraping it, to check that
// every metric the dashboard and the alerts use is exported.
//
// Like e2e, it imports no package of this module: the server is a black box.
// promtool and prometheus come from Debian's prometheus package
// (scripts/prometheus.sh install); without them the tests that need them are
// skipped, except under CI, where they fail.
package stack_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/rtstream/rtstream/internal/testenv"
)

// repoRoot is the module root: go test runs in the package directory.
const repoRoot = ".."

// binDir holds the server binary, built on first use.
var binDir string

func TestMain(m *testing.M) { os.Exit(runMain(m)) }

func runMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "rtstream-stack-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "stack:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	binDir = dir
	return m.Run()
}

var (
	buildOnce sync.Once
	buildErr  error
	buildOut  []byte
)

// serverBinary builds ./cmd/rtstream once per test binary and returns its path.
func serverBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(binDir, "rtstream")
	buildOnce.Do(func() {
		cmd := exec.Command("go", "build", "-o", bin, "./cmd/rtstream")
		cmd.Dir = repoRoot
		buildOut, buildErr = cmd.CombinedOutput()
	})
	if buildErr != nil {
		t.Fatalf("building the server: %v\n%s", buildErr, buildOut)
	}
	return bin
}

// needTool returns the path of a tool from Debian's prometheus package. When
// it is missing the test is skipped, except under CI, which must not skip.
func needTool(t *testing.T, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err == nil {
		return path
	}
	testenv.Missing(t, name+" is not on PATH: run scripts/prometheus.sh install (Debian's prometheus package)")
	return ""
}

// repoPath is path (slash-separated, relative to the module root) on disk.
func repoPath(path string) string {
	return filepath.Join(repoRoot, filepath.FromSlash(path))
}

func readRepoFile(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(repoPath(path))
	if err != nil {
		t.Fatalf("reading %s: %v", path, err)
	}
	return data
}

// readYAML decodes the YAML file at path (relative to the module root) into v.
func readYAML(t *testing.T, path string, v any) {
	t.Helper()
	if err := yaml.Unmarshal(readRepoFile(t, path), v); err != nil {
		t.Fatalf("parsing %s: %v", path, err)
	}
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
