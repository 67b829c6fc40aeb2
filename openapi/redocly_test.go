package openapi_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/rtstream/rtstream/internal/testenv"
)

// redoclyReport is what `redocly lint --format=json` prints on stdout.
type redoclyReport struct {
	Totals struct {
		Errors   int `json:"errors"`
		Warnings int `json:"warnings"`
		Ignored  int `json:"ignored"`
	} `json:"totals"`
	Version  string `json:"version"`
	Problems []struct {
		RuleID   string `json:"ruleId"`
		Severity string `json:"severity"`
		Message  string `json:"message"`
		Location []struct {
			Pointer string `json:"pointer"`
			Start   struct {
				Line int `json:"line"`
			} `json:"start"`
		} `json:"location"`
	} `json:"problems"`
}

// TestRedoclyLint lints the document with the Redocly CLI's recommended
// ruleset, at the version scripts/redocly.sh pins, with the repo's
// redocly.yaml: it must report no error and no warning. The only problems
// allowed are the ones .redocly.lint-ignore.yaml suppresses, each with its
// reason, and each of those must still occur (a suppression outliving its
// problem would hide the next one at that place).
func TestRedoclyLint(t *testing.T) {
	script, err := filepath.Abs(filepath.Join("..", "scripts", "redocly.sh"))
	if err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(script, "check").CombinedOutput(); err != nil {
		testenv.Missing(t, "the Redocly CLI is not installed ("+strings.TrimSpace(string(out))+
			"): run scripts/redocly.sh install")
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(script, "lint", "--format=json", "--max-problems=1000")
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	runErr := cmd.Run()
	var exitErr *exec.ExitError
	if runErr != nil && !errors.As(runErr, &exitErr) {
		t.Fatalf("running %s lint: %v", script, runErr)
	}
	var rep redoclyReport
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		// A broken redocly.yaml or document stops redocly before its report.
		t.Fatalf("scripts/redocly.sh lint printed no JSON report (%v, %v):\n%s\n%s", runErr, err, stdout.String(), stderr.String())
	}
	t.Logf("redocly %s: %d errors, %d warnings, %d ignored", rep.Version, rep.Totals.Errors, rep.Totals.Warnings, rep.Totals.Ignored)
	for _, p := range rep.Problems {
		where := ""
		if len(p.Location) > 0 {
			where = p.Location[0].Pointer + " (line " + strconv.Itoa(p.Location[0].Start.Line) + ")"
		}
		t.Errorf("%s %s at %s: %s", p.Severity, p.RuleID, where, p.Message)
	}
	if rep.Totals.Errors != 0 || rep.Totals.Warnings != 0 {
		t.Errorf("redocly lint: %d errors and %d warnings, want none; see `scripts/redocly.sh lint`",
			rep.Totals.Errors, rep.Totals.Warnings)
	}
	if runErr != nil && rep.Totals.Errors == 0 {
		t.Errorf("scripts/redocly.sh lint failed without errors in its report: %v\n%s", runErr, stderr.String())
	}

	suppressed := suppressions(t, filepath.Join("..", ".redocly.lint-ignore.yaml"))
	if rep.Totals.Ignored != suppressed {
		t.Errorf("redocly ignored %d problems, but .redocly.lint-ignore.yaml suppresses %d: "+
			"delete the suppressions whose problem is gone", rep.Totals.Ignored, suppressed)
	}
}

// suppressions counts the entries of Redocly's ignore file (file → rule →
// JSON pointers), and fails t for any without a reason: a comment on the
// line above it or at its end.
func suppressions(t *testing.T, path string) int {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if len(doc.Content) != 1 || doc.Content[0].Kind != yaml.MappingNode {
		t.Fatalf("%s: not a mapping of files to rules", path)
	}
	n := 0
	files := doc.Content[0].Content
	for i := 0; i+1 < len(files); i += 2 {
		rules := files[i+1].Content
		for j := 0; j+1 < len(rules); j += 2 {
			rule := rules[j].Value
			for _, entry := range rules[j+1].Content {
				n++
				if strings.TrimSpace(entry.HeadComment+entry.LineComment) == "" {
					t.Errorf("%s: %s %s is suppressed without a reason (a comment above it)", path, rule, entry.Value)
				}
			}
		}
	}
	return n
}
