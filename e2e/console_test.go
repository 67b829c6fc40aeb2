package e2e

import (
	"bytes"
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rtstream/rtstream/internal/testenv"
)

// chromiumPath is Debian's chromium, which scripts/browser.sh installs.
const chromiumPath = "/usr/bin/chromium"

// browserTest finds what the console's browser test needs: node, chromium and
// playwright-core in e2e/browser/node_modules. Without them the test is
// skipped, except under CI, which must never skip.
func browserTest(t *testing.T) (node, script string) {
	t.Helper()
	script, err := filepath.Abs(filepath.Join("browser", "console.test.mjs"))
	if err != nil {
		t.Fatal(err)
	}
	var missing []string
	node, err = exec.LookPath("node")
	if err != nil {
		missing = append(missing, "node")
	}
	if _, err := os.Stat(chromiumPath); err != nil {
		missing = append(missing, chromiumPath)
	}
	if _, err := os.Stat(filepath.Join("browser", "node_modules", "playwright-core", "package.json")); err != nil {
		missing = append(missing, "e2e/browser/node_modules/playwright-core")
	}
	if len(missing) == 0 {
		return node, script
	}
	testenv.Missing(t, "the console's browser test needs "+strings.Join(missing, ", ")+": run scripts/browser.sh install")
	return "", ""
}

// TestConsole opens the console in a real browser against a server on a real
// Kafka: it enters the key, creates a stream, sends events from the textarea,
// sees the results arrive live over EventSource, lists a dead letter, and
// checks a problem answer is shown readably (e2e/browser/console.test.mjs).
// The screenshot it takes is kept in out/console/ as a CI artifact.
func TestConsole(t *testing.T) {
	t.Parallel()
	node, script := browserTest(t)
	s := startServer(t, "console", kafkaEnv(testenv.KafkaBrokers(t), newPrefix(t, "console")))

	// The page is public and carries a policy that allows its own files
	// only; the API behind it is not public.
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	noKey := http.Header{"X-API-Key": {""}}
	page, err := request(ctx, http.MethodGet, s.Base+"/console", "", nil, noKey)
	if err != nil {
		t.Fatal(err)
	}
	if page.Status != http.StatusOK || mediaType(page.Header.Get("Content-Type")) != "text/html" {
		t.Fatalf("GET /console without a key: %d %s", page.Status, page.Header.Get("Content-Type"))
	}
	csp := page.Header.Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'none'", "script-src 'self'", "style-src 'self'", "connect-src 'self'", "frame-ancestors 'none'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("the console's Content-Security-Policy %q lacks %q", csp, want)
		}
	}
	if strings.Contains(csp, "unsafe") {
		t.Errorf("the console's Content-Security-Policy allows unsafe sources: %q", csp)
	}
	list, err := request(ctx, http.MethodGet, s.Base+"/v1/streams", "", nil, noKey)
	if err != nil {
		t.Fatal(err)
	}
	checkProblem(t, "GET /v1/streams without a key", list, http.StatusUnauthorized)

	outDir, err := filepath.Abs(filepath.Join("..", "out", "console"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		t.Fatal(err)
	}
	shot := filepath.Join(outDir, "console.png")
	_ = os.Remove(shot) // never report an old run's picture

	bctx, bcancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer bcancel()
	cmd := exec.CommandContext(bctx, node, script, s.Base, apiKey, shot)
	cmd.Dir = filepath.Dir(script)
	cmd.Env = append(os.Environ(), "CHROMIUM="+chromiumPath)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	runErr := cmd.Run()
	t.Logf("browser test (%s):\n%s", time.Since(start).Round(time.Millisecond), out.String())
	if runErr != nil {
		t.Fatalf("the browser test failed: %v (screenshot: %s)", runErr, shot)
	}
	if !strings.Contains(out.String(), "console test: ok") {
		t.Fatalf("the browser test exited 0 without saying ok")
	}
	png, err := os.ReadFile(shot)
	if err != nil {
		t.Fatalf("no screenshot: %v", err)
	}
	if !bytes.HasPrefix(png, []byte("\x89PNG\r\n\x1a\n")) || len(png) < 10<<10 {
		t.Errorf("the screenshot %s is not a plausible PNG (%d bytes)", shot, len(png))
	}
	t.Logf("screenshot: %s", shot)
}
