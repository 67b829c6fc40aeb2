// Command rtstreamctl is a command-line client of the rtstream API, built on
// the Go client package: it creates, lists, reads and deletes streams, sends
// NDJSON from standard input in batches that are safe to retry, and tails a
// stream's results as JSON lines, resuming by itself after a disconnect.
//
// Exit status: 0 on success, 1 when the API refused a request or could not
// be reached (the problem's detail goes to standard error), 2 for a command
// line that does not parse.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/rtstream/rtstream/client"
)

const (
	exitOK    = 0
	exitError = 1
	exitUsage = 2
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Getenv, os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

const usage = `usage: rtstreamctl [--url URL] [--key KEY] <command> [flags] [args]

commands:
  create [--filter EXPR] [--map EXPR] [--schema FILE] [--source-topic TOPIC [--source-format F]
         [--source-key K] [--source-from earliest|latest]] [--id ID] [-q] [NAME]
                                                              create a stream (PUT with --id); --schema:
                                                              a JSON Schema every event must match (- : stdin);
                                                              --source-topic: a read-only stream of that topic
  usage                                                       your tenant's quotas, their use, and what it sent
  send [--batch N] [--linger D] [--attempts N] STREAM         send NDJSON from stdin; prints accepted event ids
  tail [--from live|earliest|CURSOR] [-n N] STREAM            follow results, one JSON line each
  streams [--after ID] [--limit N]                            list streams, one JSON line each
  get STREAM                                                  show a stream
  delete STREAM                                               delete a stream
  dead-letters [--after CURSOR] [--limit N] STREAM            events the stream's processor failed on
  token [--ttl D] [-q] STREAM                                 mint a subscribe token: results only, this stream only

flags of every command:
  --url URL      API base URL (env RTSTREAM_URL, default http://localhost:8080)
  --key KEY      API key, sent as X-API-Key (env RTSTREAM_API_KEY)
  --timeout D    bound of each request, a send batch's retries included; not tail's (default 30s)

exit status: 0 ok, 1 the API refused or could not be reached, 2 usage
`

// cli is one invocation's shared state.
type cli struct {
	getenv         func(string) string
	stdin          io.Reader
	stdout, stderr io.Writer

	url, key string
	timeout  time.Duration
}

// usageError is a command line that does not parse: exit status 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return &usageError{fmt.Sprintf(format, args...)} }

// run is the whole program, without the process: tests call it.
func run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) int {
	c := &cli{getenv: getenv, stdin: stdin, stdout: stdout, stderr: stderr}
	c.url = getenv("RTSTREAM_URL")
	if c.url == "" {
		c.url = "http://localhost:8080"
	}
	c.key = getenv("RTSTREAM_API_KEY")
	c.timeout = 30 * time.Second

	global := c.flagSet("rtstreamctl")
	if err := global.Parse(args); err != nil {
		return c.fail(err)
	}
	rest := global.Args()
	if len(rest) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	cmds := map[string]func(context.Context, []string) error{
		"create":       c.create,
		"send":         c.send,
		"tail":         c.tail,
		"streams":      c.streams,
		"get":          c.get,
		"delete":       c.delete,
		"dead-letters": c.deadLetters,
		"token":        c.token,
		"usage":        c.usage,
	}
	name, cmdArgs := rest[0], rest[1:]
	if name == "help" {
		fmt.Fprint(stdout, usage)
		return exitOK
	}
	cmd, ok := cmds[name]
	if !ok {
		return c.fail(usagef("unknown command %q", name))
	}
	return c.fail(cmd(ctx, cmdArgs))
}

// flagSet is a flag set with the flags every command takes, so that they
// may come before or after the command's name.
func (c *cli) flagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard) // run prints usage errors itself, once
	fs.StringVar(&c.url, "url", c.url, "API base URL (env RTSTREAM_URL)")
	fs.StringVar(&c.key, "key", c.key, "API key (env RTSTREAM_API_KEY)")
	fs.DurationVar(&c.timeout, "timeout", c.timeout, "bound of each request")
	return fs
}

// parse parses a command's flags, which may come between its arguments too
// (flag stops at the first argument), and returns the arguments.
func parse(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		consumed := args[:len(args)-len(rest)]
		if len(rest) == 0 || len(consumed) > 0 && consumed[len(consumed)-1] == "--" {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// exactly checks the number of arguments.
func exactly(pos []string, n int, what string) error {
	if len(pos) != n {
		return usagef("want %s, got %d argument(s)", what, len(pos))
	}
	return nil
}

// fail reports err and returns the exit status it means.
func (c *cli) fail(err error) int {
	if err == nil {
		return exitOK
	}
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(c.stdout, usage)
		return exitOK
	}
	var ue *usageError
	if errors.As(err, &ue) || isFlagError(err) {
		fmt.Fprintf(c.stderr, "rtstreamctl: %v\nrun 'rtstreamctl help' for usage\n", err)
		return exitUsage
	}
	var ae *client.Error
	if errors.As(err, &ae) {
		fmt.Fprintf(c.stderr, "rtstreamctl: %d %s", ae.StatusCode, ae.Title)
		if ae.Detail != "" {
			fmt.Fprintf(c.stderr, ": %s", ae.Detail)
		}
		fmt.Fprintln(c.stderr)
		for _, fe := range ae.Errors {
			fmt.Fprintf(c.stderr, "  %s: %s\n", fe.Pointer, fe.Detail)
		}
		if ae.RetryAfter > 0 {
			fmt.Fprintf(c.stderr, "  retry after %s\n", ae.RetryAfter)
		}
		if errors.Is(err, client.ErrStreamDeleted) {
			fmt.Fprintln(c.stderr, "  the stream was deleted")
		}
		return exitError
	}
	fmt.Fprintf(c.stderr, "rtstreamctl: %v\n", err)
	return exitError
}

// flagError marks errors from flag parsing, which are usage errors.
type flagError struct{ err error }

func (e *flagError) Error() string { return e.err.Error() }
func (e *flagError) Unwrap() error { return e.err }

func isFlagError(err error) bool {
	var fe *flagError
	return errors.As(err, &fe)
}

// parseFlags is parse with its errors marked as usage errors.
func parseFlags(fs *flag.FlagSet, args []string) ([]string, error) {
	pos, err := parse(fs, args)
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		return nil, &flagError{err}
	}
	return pos, err
}

// newClient is the API client of the flags.
func (c *cli) newClient() (*client.Client, error) {
	cl, err := client.New(c.url, client.WithAPIKey(c.key), client.WithUserAgent("rtstreamctl"))
	if err != nil {
		return nil, usagef("--url: %v", err)
	}
	return cl, nil
}

// bounded is ctx bounded by --timeout, for one-shot requests.
func (c *cli) bounded(ctx context.Context) (context.Context, context.CancelFunc) {
	if c.timeout <= 0 {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, c.timeout)
}

// printJSON writes v as one line of JSON.
func (c *cli) printJSON(v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	data = append(data, '\n')
	_, err = c.stdout.Write(data)
	return err
}

func (c *cli) create(ctx context.Context, args []string) error {
	fs := c.flagSet("create")
	filter := fs.String("filter", "", "expression: events for which it is false make no result")
	mapping := fs.String("map", "", "expression: makes each result's data")
	schemaFile := fs.String("schema", "", "file holding a JSON Schema (2020-12) every event sent must match; - reads standard input")
	var src client.Source
	fs.StringVar(&src.Topic, "source-topic", "", "follow this existing Kafka topic: a read-only stream")
	fs.StringVar(&src.Format, "source-format", "", "with --source-topic: json (default), text or bytes")
	fs.StringVar(&src.Key, "source-key", "", "with --source-topic: only the records with this key")
	fs.StringVar(&src.From, "source-from", "", "with --source-topic: earliest or latest (default), where the stream starts")
	id := fs.String("id", "", "create with this id (PUT: idempotent; 409 if it exists with another definition)")
	quiet := fs.Bool("q", false, "print only the stream's id")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 1 {
		return usagef("create takes at most one argument, the name; got %d", len(pos))
	}
	def := client.StreamDefinition{}
	if len(pos) == 1 {
		def.Name = pos[0]
	}
	if *filter != "" || *mapping != "" {
		def.Processor = &client.Processor{Filter: *filter, Map: *mapping}
	}
	if def.Schema, err = c.readSchema(*schemaFile); err != nil {
		return err
	}
	switch {
	case src.Topic != "":
		def.Source = &src
	case src != client.Source{}:
		return usagef("--source-format, --source-key and --source-from go with --source-topic")
	}
	cl, err := c.newClient()
	if err != nil {
		return err
	}
	ctx, cancel := c.bounded(ctx)
	defer cancel()
	var st *client.Stream
	if *id != "" {
		st, _, err = cl.PutStreamFrom(ctx, *id, def)
	} else {
		st, err = cl.CreateStreamFrom(ctx, def)
	}
	if err != nil {
		return err
	}
	if *quiet {
		_, err = fmt.Fprintln(c.stdout, st.ID)
		return err
	}
	return c.printJSON(st)
}

// readSchema reads --schema's file ("-": standard input), which must hold
// one JSON value; "" is no schema. The server checks that it is a schema
// it can use.
func (c *cli) readSchema(file string) (json.RawMessage, error) {
	var data []byte
	var err error
	switch file {
	case "":
		return nil, nil
	case "-":
		data, err = io.ReadAll(c.stdin)
	default:
		data, err = os.ReadFile(file)
	}
	if err != nil {
		return nil, usagef("--schema: %v", err)
	}
	if !json.Valid(data) {
		return nil, usagef("--schema: %s does not hold one JSON value", file)
	}
	return json.RawMessage(data), nil
}

func (c *cli) get(ctx context.Context, args []string) error {
	return c.onStream(ctx, c.flagSet("get"), args, func(ctx context.Context, cl *client.Client, id string) error {
		st, err := cl.GetStream(ctx, id)
		if err != nil {
			return err
		}
		return c.printJSON(st)
	})
}

// usage prints the caller's tenant's quotas and recent sends.
func (c *cli) usage(ctx context.Context, args []string) error {
	pos, err := parseFlags(c.flagSet("usage"), args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("usage takes no argument")
	}
	cl, err := c.newClient()
	if err != nil {
		return err
	}
	ctx, cancel := c.bounded(ctx)
	defer cancel()
	u, err := cl.Usage(ctx)
	if err != nil {
		return err
	}
	return c.printJSON(u)
}

func (c *cli) delete(ctx context.Context, args []string) error {
	return c.onStream(ctx, c.flagSet("delete"), args, func(ctx context.Context, cl *client.Client, id string) error {
		return cl.DeleteStream(ctx, id)
	})
}

// onStream runs a command that takes one stream id after the flags of fs:
// its requests, bounded by --timeout.
func (c *cli) onStream(ctx context.Context, fs *flag.FlagSet, args []string, run func(context.Context, *client.Client, string) error) error {
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if err := exactly(pos, 1, "a stream id"); err != nil {
		return err
	}
	cl, err := c.newClient()
	if err != nil {
		return err
	}
	ctx, cancel := c.bounded(ctx)
	defer cancel()
	return run(ctx, cl, pos[0])
}

func (c *cli) streams(ctx context.Context, args []string) error {
	fs := c.flagSet("streams")
	after := fs.String("after", "", "list the streams after this id")
	limit := fs.Int("limit", 0, "list at most this many (0: all)")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if err := exactly(pos, 0, "no arguments"); err != nil {
		return err
	}
	if *limit < 0 {
		return usagef("--limit must not be negative")
	}
	cl, err := c.newClient()
	if err != nil {
		return err
	}
	page := 100
	if *limit > 0 && *limit < page {
		page = *limit
	}
	n := 0
	// The timeout bounds each page, not the whole listing.
	for st, err := range cl.AllStreams(ctx, client.ListOptions{After: *after, Limit: page}) {
		if err != nil {
			return err
		}
		if err := c.printJSON(st); err != nil {
			return err
		}
		if n++; *limit > 0 && n >= *limit {
			break
		}
	}
	return nil
}

// token mints a subscribe token, for a browser's ?token= or another
// program's Bearer: it can only read this stream's results, until it
// expires.
func (c *cli) token(ctx context.Context, args []string) error {
	fs := c.flagSet("token")
	ttl := fs.Duration("ttl", 0, "the token's life (0: the server's default; capped by its SUBSCRIBE_TOKEN_MAX_TTL)")
	quiet := fs.Bool("q", false, "print only the token")
	return c.onStream(ctx, fs, args, func(ctx context.Context, cl *client.Client, id string) error {
		if *ttl < 0 {
			return usagef("--ttl must not be negative")
		}
		tok, err := cl.CreateToken(ctx, id, *ttl)
		if err != nil {
			return err
		}
		if *quiet {
			_, err := fmt.Fprintln(c.stdout, tok.Token)
			return err
		}
		return c.printJSON(tok)
	})
}

func (c *cli) deadLetters(ctx context.Context, args []string) error {
	fs := c.flagSet("dead-letters")
	after := fs.String("after", "", "start after this cursor (the next of an earlier call)")
	limit := fs.Int("limit", 0, "at most this many (0: the server's default, 100)")
	return c.onStream(ctx, fs, args, func(ctx context.Context, cl *client.Client, id string) error {
		page, err := cl.DeadLetters(ctx, id, *after, *limit)
		if err != nil {
			return err
		}
		for _, dl := range page.DeadLetters {
			if err := c.printJSON(dl); err != nil {
				return err
			}
		}
		if page.Next != "" {
			// On stderr, so that stdout stays one dead letter per line.
			fmt.Fprintf(c.stderr, "next: %s\n", page.Next)
		}
		return nil
	})
}

func (c *cli) tail(ctx context.Context, args []string) error {
	fs := c.flagSet("tail")
	from := fs.String("from", "live", "where to start: live, earliest, or a cursor to resume after")
	count := fs.Int("n", 0, "exit after this many results (0: follow until interrupted)")
	idle := fs.Duration("idle", 45*time.Second, "reconnect when not even a heartbeat came for this long")
	quiet := fs.Bool("q", false, "do not report reconnects on stderr")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if err := exactly(pos, 1, "a stream id"); err != nil {
		return err
	}
	if *count < 0 {
		return usagef("-n must not be negative")
	}
	o := client.SubscribeOptions{IdleTimeout: *idle}
	switch *from {
	case "live", "":
	case "earliest":
		o.Earliest = true
	default:
		o.After = *from
	}
	if !*quiet {
		o.OnReconnect = func(err error, wait time.Duration) {
			fmt.Fprintf(c.stderr, "rtstreamctl: reconnecting in %s: %v\n", wait.Round(time.Millisecond), err)
		}
	}
	cl, err := c.newClient()
	if err != nil {
		return err
	}
	out := bufio.NewWriter(c.stdout)
	defer out.Flush()
	n := 0
	for r, err := range cl.Subscribe(ctx, pos[0], o) {
		if err != nil {
			if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
				return nil // interrupted: the normal way to stop following
			}
			if errors.Is(err, client.ErrStreamDeleted) {
				return fmt.Errorf("stream %s was deleted", pos[0])
			}
			return err
		}
		data, err := json.Marshal(r)
		if err != nil {
			return err
		}
		out.Write(data)
		out.WriteByte('\n')
		// Each line as it comes: tail feeds pipes that wait for it.
		if err := out.Flush(); err != nil {
			return err
		}
		if n++; *count > 0 && n >= *count {
			break
		}
	}
	return nil
}

// line is one line of standard input, or the error that ended it.
type line struct {
	no   int
	data []byte
	err  error
}

func (c *cli) send(ctx context.Context, args []string) error {
	fs := c.flagSet("send")
	batch := fs.Int("batch", 100, "events per request, at most (the server's MAX_BATCH is 1000 by default)")
	linger := fs.Duration("linger", 200*time.Millisecond, "send a batch that is not full once input paused this long (0: only full batches and the last)")
	attempts := fs.Int("attempts", 5, "tries per request; retries reuse the request's Idempotency-Key, so none adds events twice")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if err := exactly(pos, 1, "a stream id"); err != nil {
		return err
	}
	if *batch < 1 {
		return usagef("--batch must be at least 1")
	}
	if *attempts < 1 {
		return usagef("--attempts must be at least 1")
	}
	cl, err := client.New(c.url, client.WithAPIKey(c.key), client.WithUserAgent("rtstreamctl"),
		client.WithRetryPolicy(client.RetryPolicy{MaxAttempts: *attempts}))
	if err != nil {
		return usagef("--url: %v", err)
	}
	done := make(chan struct{})
	defer close(done)
	b := &batcher{c: c, cl: cl, stream: pos[0], out: bufio.NewWriter(c.stdout)}
	defer b.out.Flush()
	return b.run(ctx, c.readLines(done), *batch, *linger)
}

// readLines reads stdin on a goroutine of its own, so that a batch can go out
// when input pauses (a pipe from a program that writes now and then) rather
// than only when it is full. It stops when done is closed.
func (c *cli) readLines(done <-chan struct{}) <-chan line {
	lines := make(chan line)
	go func() {
		defer close(lines)
		br := bufio.NewReaderSize(c.stdin, 64<<10)
		for no := 1; ; no++ {
			data, err := br.ReadBytes('\n')
			if len(data) > 0 {
				select {
				case lines <- line{no: no, data: data}:
				case <-done:
					return
				}
			}
			if err != nil {
				if err != io.EOF {
					select {
					case lines <- line{err: err}:
					case <-done:
					}
				}
				return
			}
		}
	}()
	return lines
}

// batcher sends the lines of stdin in batches and prints their event ids.
type batcher struct {
	c       *cli
	cl      *client.Client
	stream  string
	out     *bufio.Writer
	pending []json.RawMessage
}

// run sends a batch when it is full, when input paused for linger, and at
// the end; a line that is not JSON sends what came before it, then stops.
func (b *batcher) run(ctx context.Context, lines <-chan line, batch int, linger time.Duration) error {
	var timer *time.Timer
	var timerC <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-timerC:
			timerC = nil
			if err := b.flush(ctx); err != nil {
				return err
			}
		case l, ok := <-lines:
			if !ok {
				return b.flush(ctx)
			}
			if l.err != nil {
				return fmt.Errorf("reading stdin: %w", l.err)
			}
			ev := []byte(strings.TrimSpace(string(l.data)))
			if len(ev) == 0 {
				continue // blank lines separate nothing in NDJSON
			}
			if !json.Valid(ev) {
				// What came before is sent, so that the ids printed are
				// exactly the lines before this one.
				if err := b.flush(ctx); err != nil {
					return err
				}
				return fmt.Errorf("stdin line %d is not valid JSON; the lines before it were sent", l.no)
			}
			b.pending = append(b.pending, ev)
			if len(b.pending) >= batch {
				if err := b.flush(ctx); err != nil {
					return err
				}
				timerC = nil
			} else if linger > 0 && timerC == nil {
				if timer == nil {
					timer = time.NewTimer(linger)
				} else {
					timer.Reset(linger)
				}
				timerC = timer.C
			}
		}
	}
}

// flush sends the pending events as one request and prints their ids.
func (b *batcher) flush(ctx context.Context) error {
	if len(b.pending) == 0 {
		return nil
	}
	rctx, cancel := b.c.bounded(ctx)
	defer cancel()
	// Retry generates one Idempotency-Key for this request, and every
	// retry of it carries the same key.
	res, err := b.cl.SendBatch(rctx, b.stream, b.pending, client.SendOptions{Retry: true})
	if err != nil {
		return fmt.Errorf("sending %d events: %w", len(b.pending), err)
	}
	b.pending = b.pending[:0]
	for _, id := range res.EventIDs {
		b.out.WriteString(id)
		b.out.WriteByte('\n')
	}
	return b.out.Flush()
}
