package stack_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// instruction is one Dockerfile instruction, continuation lines joined.
type instruction struct {
	cmd  string // upper case: FROM, RUN, ...
	args string
	line int
}

// parseDockerfile splits a Dockerfile into instructions. It follows the
// format's rules that matter here: comments, blank lines, and a backslash at
// the end of a line continuing the instruction.
func parseDockerfile(t *testing.T, data []byte) []instruction {
	t.Helper()
	var out []instruction
	var cur strings.Builder
	start := 0
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "#") || (line == "" && cur.Len() == 0) {
			continue
		}
		if cur.Len() == 0 {
			start = n
		}
		if body, ok := strings.CutSuffix(line, `\`); ok {
			cur.WriteString(body + " ")
			continue
		}
		cur.WriteString(line)
		cmd, args, _ := strings.Cut(strings.TrimSpace(cur.String()), " ")
		out = append(out, instruction{strings.ToUpper(cmd), strings.Join(strings.Fields(args), " "), start})
		cur.Reset()
	}
	if cur.Len() > 0 {
		t.Fatalf("Dockerfile ends inside a continued instruction (line %d)", start)
	}
	return out
}

// stage is one FROM ... section.
type stage struct {
	image, name string
	body        []instruction
}

func dockerStages(t *testing.T) []stage {
	t.Helper()
	ins := parseDockerfile(t, readRepoFile(t, "Dockerfile"))
	// Global ARGs (before the first FROM) with defaults may appear in FROM.
	args := map[string]string{}
	var stages []stage
	for _, in := range ins {
		switch {
		case in.cmd == "ARG" && len(stages) == 0:
			k, v, _ := strings.Cut(in.args, "=")
			args[k] = strings.Trim(v, `"`)
		case in.cmd == "FROM":
			f := strings.Fields(in.args)
			var st stage
			for i := 0; i < len(f); i++ {
				switch {
				case strings.HasPrefix(f[i], "--"):
				case strings.EqualFold(f[i], "AS") && i+1 < len(f):
					st.name = f[i+1]
					i++
				case st.image == "":
					st.image = os.Expand(f[i], func(k string) string { return args[k] })
				}
			}
			stages = append(stages, st)
		case len(stages) > 0:
			stages[len(stages)-1].body = append(stages[len(stages)-1].body, in)
		default:
			t.Errorf("Dockerfile line %d: %s before the first FROM", in.line, in.cmd)
		}
	}
	return stages
}

func TestDockerfile(t *testing.T) {
	stages := dockerStages(t)
	if len(stages) < 2 {
		t.Fatalf("%d stage(s): want a multi-stage build (a Go builder, then a small runtime image)", len(stages))
	}
	build, final := stages[0], stages[len(stages)-1]

	// The builder's Go is the one go.mod asks for.
	goMod := string(readRepoFile(t, "go.mod"))
	m := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindStringSubmatch(goMod)
	if m == nil {
		t.Fatal("go.mod has no go directive")
	}
	if !strings.HasPrefix(build.image, "golang:"+m[1]) {
		t.Errorf("builder image %q: want golang:%s (go.mod says go %s)", build.image, m[1], m[1])
	}
	var buildRun string
	for _, in := range build.body {
		if in.cmd == "RUN" && strings.Contains(in.args, "go build") {
			buildRun = in.args
		}
	}
	for _, want := range []string{"CGO_ENABLED=0", "-trimpath", `-ldflags "-s -w"`, "./cmd/rtstream"} {
		if !strings.Contains(buildRun, want) {
			t.Errorf("builder RUN %q: missing %s", buildRun, want)
		}
	}

	var user, healthcheck string
	var exposed []string
	copiesBinary := false
	for _, in := range final.body {
		switch in.cmd {
		case "USER":
			user = in.args
		case "EXPOSE":
			exposed = append(exposed, strings.Fields(in.args)...)
		case "HEALTHCHECK":
			healthcheck = in.args
		case "COPY":
			if build.name != "" && strings.Contains(in.args, "--from="+build.name) {
				copiesBinary = true
			}
		}
	}
	if !copiesBinary {
		t.Errorf("the final stage does not COPY --from=%s: the binary must come from the builder", build.name)
	}
	name, _, _ := strings.Cut(user, ":")
	if name == "" || name == "root" || name == "0" {
		t.Errorf("final stage USER %q: want a non-root user", user)
	}
	if !slices.Contains(exposed, "8080") && !slices.Contains(exposed, "8080/tcp") {
		t.Errorf("EXPOSE %v: want 8080", exposed)
	}
	// A health check needs a client in the image: busybox's wget.
	if strings.Contains(healthcheck, "wget") && !strings.HasPrefix(final.image, "alpine") && !strings.HasPrefix(final.image, "busybox") {
		t.Errorf("HEALTHCHECK uses wget, but the final image %q may not have it", final.image)
	}
	if healthcheck != "" && !strings.Contains(healthcheck, "/readyz") {
		t.Errorf("HEALTHCHECK %q: want it to ask /readyz", healthcheck)
	}
}

// dockerIgnore is a .dockerignore: its patterns in order, later ones winning.
type dockerIgnore []struct {
	pattern string
	negate  bool
}

func loadDockerIgnore(t *testing.T) dockerIgnore {
	t.Helper()
	var di dockerIgnore
	for _, line := range strings.Split(string(readRepoFile(t, ".dockerignore")), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		neg := strings.HasPrefix(line, "!")
		p := path.Clean(strings.TrimPrefix(strings.TrimPrefix(line, "!"), "/"))
		if strings.Contains(p, "**") {
			t.Fatalf(".dockerignore: %q: this test does not understand **; extend it", line)
		}
		if _, err := path.Match(p, ""); err != nil {
			t.Fatalf(".dockerignore: %q: %v", line, err)
		}
		di = append(di, struct {
			pattern string
			negate  bool
		}{p, neg})
	}
	return di
}

// excluded reports whether the context path rel (slash-separated) is left out
// of the build context: a pattern that matches the path or one of its parent
// directories excludes it, and the last matching pattern decides.
func (di dockerIgnore) excluded(rel string) bool {
	out := false
	for _, p := range di {
		for prefix := rel; prefix != "."; prefix = path.Dir(prefix) {
			if ok, _ := path.Match(p.pattern, prefix); ok {
				out = !p.negate
				break
			}
		}
	}
	return out
}

// The build context keeps every file the server is built from, and leaves out
// the repository history and local secrets.
func TestDockerIgnore(t *testing.T) {
	di := loadDockerIgnore(t)
	for _, p := range []string{".git/config", ".env", "data/kafka/x", "rtstream"} {
		if !di.excluded(p) {
			t.Errorf(".dockerignore: %s is sent to the build context", p)
		}
	}

	needed := []string{"go.mod", "go.sum"}
	cmd := exec.Command("go", "list", "-deps", "-json", "./cmd/rtstream")
	cmd.Dir = repoRoot
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	root, err := filepath.Abs(repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p struct {
			Dir, ImportPath string
			Module          *struct{ Main bool }
			GoFiles         []string
			EmbedFiles      []string
			OtherFiles      []string
		}
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("go list output: %v", err)
		}
		if p.Module == nil || !p.Module.Main {
			continue // the standard library and modules come from elsewhere
		}
		rel, err := filepath.Rel(root, p.Dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range slices.Concat(p.GoFiles, p.EmbedFiles, p.OtherFiles) {
			needed = append(needed, path.Join(filepath.ToSlash(rel), f))
		}
	}
	if len(needed) < 5 {
		t.Fatalf("go list found only %v", needed)
	}
	for _, f := range needed {
		if di.excluded(f) {
			t.Errorf(".dockerignore excludes %s, which go build ./cmd/rtstream needs", f)
		}
	}
}
