package e2e

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rtstream/rtstream/internal/testenv"
)

// buildCLI builds cmd/rtstreamctl into a test directory, the way runMain
// builds the server: from the module root, with the go command on PATH.
func buildCLI(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "rtstreamctl")
	build := exec.Command("go", "build", "-o", bin, "./cmd/rtstreamctl")
	build.Dir = ".." // the module root; go test runs in the package directory
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building rtstreamctl: %v\n%s", err, out)
	}
	return bin
}

// ctl runs rtstreamctl commands against one server, with only the
// environment it chooses.
type ctl struct {
	t    *testing.T
	bin  string
	base string
}

func (c ctl) command(ctx context.Context, stdin string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, c.bin, args...)
	cmd.Env = []string{"RTSTREAM_URL=" + c.base, "RTSTREAM_API_KEY=" + apiKey}
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	return cmd
}

// run runs one command to its end and returns its exit status and output.
func (c ctl) run(stdin string, args ...string) (int, string, string) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	cmd := c.command(ctx, stdin, args...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	code := 0
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			c.t.Fatalf("rtstreamctl %s: %v", strings.Join(args, " "), err)
		}
		code = ee.ExitCode()
	}
	return code, out.String(), errOut.String()
}

// mustRun runs a command that must succeed.
func (c ctl) mustRun(stdin string, args ...string) string {
	c.t.Helper()
	code, out, errOut := c.run(stdin, args...)
	if code != 0 {
		c.t.Fatalf("rtstreamctl %s: exit %d, stderr %s", strings.Join(args, " "), code, errOut)
	}
	return out
}

// TestCLI drives the built rtstreamctl against the real server: create,
// tail a stream for N results while send feeds it NDJSON, list, get, read
// dead letters, delete, and the exit statuses of errors.
func TestCLI(t *testing.T) {
	t.Parallel()
	s := startServer(t, "cli", kafkaEnv(testenv.KafkaBrokers(t), newPrefix(t, "cli")))
	c := ctl{t: t, bin: buildCLI(t), base: s.Base}

	id := strings.TrimSpace(c.mustRun("", "create", "-q", "cli-sensors"))
	var created streamObj
	decodeJSON(t, "get", []byte(c.mustRun("", "get", id)), &created)
	checkStream(t, created, id, "cli-sensors")

	out := c.mustRun("", "create", "cli-hot", "--filter", "data.temp > 30", "--map", `{"f": data.temp * 2}`)
	var hot struct {
		streamObj
		Processor struct{ Filter, Map string } `json:"processor"`
	}
	decodeJSON(t, "create with a processor", []byte(out), &hot)
	if hot.Processor.Filter != "data.temp > 30" || hot.Processor.Map != `{"f": data.temp * 2}` {
		t.Fatalf("created %s", out)
	}
	code, _, errOut := c.run("", "create", "--filter", "data.temp >", "bad")
	if code != 1 || !strings.Contains(errOut, "400 Bad Request") || !strings.Contains(errOut, "/processor/filter") {
		t.Fatalf("a bad filter: exit %d, stderr %q; want 1 and the problem with its pointer", code, errOut)
	}

	// tail follows from the earliest result and exits after 7; it starts
	// before the send, and also reads what the send made before it
	// connected.
	const n = 7
	ctx, cancel := context.WithTimeout(context.Background(), resultTimeout)
	defer cancel()
	tail := c.command(ctx, "", "tail", "--from", "earliest", "-n", fmt.Sprint(n), id)
	var tailOut, tailErr bytes.Buffer
	tail.Stdout, tail.Stderr = &tailOut, &tailErr
	if err := tail.Start(); err != nil {
		t.Fatal(err)
	}
	var ndjson strings.Builder
	for i := range n {
		fmt.Fprintf(&ndjson, "{\"temp\":%d}\n", i)
		if i == 3 {
			ndjson.WriteString("\n") // blank lines are skipped
		}
	}
	sent := strings.Fields(c.mustRun(ndjson.String(), "send", "--batch", "3", id))
	if len(sent) != n {
		t.Fatalf("send printed %d ids, want %d: %q", len(sent), n, sent)
	}
	if err := tail.Wait(); err != nil {
		t.Fatalf("tail: %v; stderr %s", err, tailErr.String())
	}
	var got []string
	sc := bufio.NewScanner(&tailOut)
	for i := 0; sc.Scan(); i++ {
		var r struct {
			Cursor string `json:"cursor"`
			result
		}
		decodeJSON(t, "a tail line", sc.Bytes(), &r)
		if r.Cursor == "" || r.StreamID != id || !jsonEqual(r.Data, fmt.Appendf(nil, `{"temp":%d}`, i)) {
			t.Errorf("tail line %d: %s", i, sc.Text())
		}
		got = append(got, r.EventID)
	}
	if strings.Join(got, " ") != strings.Join(sent, " ") {
		t.Fatalf("tail printed the results of %q, want those of %q, in order", got, sent)
	}

	// streams lists both; --limit stops early.
	listed := c.mustRun("", "streams")
	if !strings.Contains(listed, `"id":"`+id+`"`) || !strings.Contains(listed, `"id":"`+hot.ID+`"`) {
		t.Fatalf("streams: %s", listed)
	}
	if lines := strings.Count(c.mustRun("", "streams", "--limit", "1"), "\n"); lines != 1 {
		t.Fatalf("streams --limit 1 printed %d lines", lines)
	}
	if out := c.mustRun("", "dead-letters", id); out != "" {
		t.Fatalf("dead-letters of a passthrough stream: %q", out)
	}

	// A live tail open while the stream is deleted exits 1, saying so.
	live := c.command(ctx, "", "tail", id)
	var liveErr bytes.Buffer
	live.Stderr = &liveErr
	if err := live.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second) // time to connect; a tail that had not would get a 404 and exit 1 too
	c.mustRun("", "delete", id)
	err := live.Wait()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 ||
		!strings.Contains(liveErr.String(), "was deleted") && !strings.Contains(liveErr.String(), "404") {
		t.Fatalf("tail of a deleted stream: %v, stderr %q; want exit 1 saying the stream was deleted", err, liveErr.String())
	}
	if !strings.Contains(liveErr.String(), "was deleted") {
		t.Logf("the live tail had not connected before the delete: %s", liveErr.String())
	}

	code, _, errOut = c.run("", "get", id)
	if code != 1 || !strings.Contains(errOut, "404 Not Found") {
		t.Fatalf("get after delete: exit %d, stderr %q", code, errOut)
	}
	code, _, errOut = c.run("{\"temp\":1}\n", "send", id)
	if code != 1 || !strings.Contains(errOut, "404") {
		t.Fatalf("send after delete: exit %d, stderr %q", code, errOut)
	}
	if code, _, _ := c.run("", "get"); code != 2 {
		t.Fatalf("get without an id: exit %d, want 2", code)
	}
}
