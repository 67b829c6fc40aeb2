package handlers

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/go-chi/chi/v5"

	"github.com/rtstream/rtstream"
	"github.com/rtstream/rtstream/middleware"
	"github.com/rtstream/rtstream/problem"
	"github.com/rtstream/rtstream/processor"
	"github.com/rtstream/rtstream/schema"
)

const maxNameLen = 200

// streamBody is the body of a create request.
type streamBody struct {
	Name      string              `json:"name"`
	Processor *rtstream.Processor `json:"processor"`
	Source    *rtstream.Source    `json:"source"`
	// Schema is kept as sent (compacted): it is stored and shown as is.
	Schema json.RawMessage `json:"schema"`
}

// streamView is a stream as the API shows it.
type streamView struct {
	rtstream.Stream
	Links struct {
		Events  string `json:"events"`
		Results string `json:"results"`
	} `json:"links"`
}

func view(st rtstream.Stream) streamView {
	// The contract's stream object has no tenant: a caller sees only its
	// own tenant's streams (an admin every tenant's, without the label).
	st.Tenant = ""
	v := streamView{Stream: st}
	v.Links.Events = "/v1/streams/" + st.ID + "/events"
	v.Links.Results = "/v1/streams/" + st.ID + "/results"
	return v
}

// pathID reads and validates the {id} path parameter, answering 400 when it
// is malformed.
func pathID(w http.ResponseWriter, r *http.Request) (string, bool) {
	id := chi.URLParam(r, "id")
	if !rtstream.ValidStreamID(id) {
		badRequest(w, r, "stream id must match ^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$",
			problem.FieldError{Pointer: "/id", Detail: "invalid stream id"})
		return "", false
	}
	return id, true
}

// readObject reads an optional body that must be one JSON object of at most
// limit bytes. An empty body is nil data; anything else that is not an
// object is answered here (413, 415, 400), naming the body as what and
// showing example, and ok is false.
func readObject(w http.ResponseWriter, r *http.Request, limit int64, what, example string) (data []byte, ok bool) {
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			problem.Write(w, r, problem.New(http.StatusRequestEntityTooLarge, fmt.Sprintf("%s over %d KiB", what, limit>>10)))
		} else {
			badRequest(w, r, "reading body: "+err.Error())
		}
		return nil, false
	}
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) == 0 {
		return nil, true
	}
	if kind, ok := contentKind(r.Header.Get("Content-Type")); !ok || kind != kindJSON {
		problem.Write(w, r, problem.New(http.StatusUnsupportedMediaType, what+" is application/json"))
		return nil, false
	}
	if trimmed[0] != '{' {
		badRequest(w, r, fmt.Sprintf("%s is a JSON object, such as %s", what, example))
		return nil, false
	}
	// encoding/json would turn such bytes into U+FFFD in silence: a name
	// or an expression would not be what the client sent.
	if off := firstInvalidUTF8(trimmed); off >= 0 {
		var de *decodeError
		errors.As(utf8Error(trimmed, off, "", ""), &de)
		badRequest(w, r, what+": "+de.detail, de.fields...)
		return nil, false
	}
	return data, true
}

// decodeStream reads an optional create body; an empty body is a passthrough
// stream.
func (s *server) decodeStream(w http.ResponseWriter, r *http.Request) (streamBody, bool) {
	var body streamBody
	data, ok := readObject(w, r, 64<<10, "a stream definition", `{"name": "sensors"}`)
	if !ok || data == nil {
		return body, ok
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil {
		detail, fe := definitionError(data, err)
		badRequest(w, r, "invalid stream definition: "+detail, fe...)
		return body, false
	}
	if dec.More() {
		badRequest(w, r, "invalid stream definition: data after the JSON object")
		return body, false
	}
	if len(body.Name) > maxNameLen {
		badRequest(w, r, fmt.Sprintf("name is longer than %d bytes", maxNameLen),
			problem.FieldError{Pointer: "/name", Detail: "too long"})
		return body, false
	}
	for _, c := range body.Name {
		// Format characters (U+202E right-to-left override, U+200B zero
		// width space, ...) reorder or hide what a name shows.
		if unicode.IsControl(c) || unicode.Is(unicode.Cf, c) {
			badRequest(w, r, fmt.Sprintf("name contains a control or format character (U+%04X)", c),
				problem.FieldError{Pointer: "/name", Detail: "control or format character"})
			return body, false
		}
	}
	if p := body.Processor; p != nil {
		// Compiled here, at creation, so that a bad expression is the
		// client's 400 now rather than a dead letter per event later. The
		// router compiles the same definition again (once per instance).
		prog, err := processor.Compile(p.Filter, p.Map)
		var ce *processor.CompileError
		var re *processor.RefusedError
		if errors.As(err, &re) {
			// Well-formed, but asks for what processors may not do.
			detail := fmt.Sprintf("function %s is not allowed in processors", re.Name)
			pr := problem.New(http.StatusUnprocessableEntity, fmt.Sprintf("processor %s: %s (line %d, column %d)", re.Field, detail, re.Line, re.Column))
			pr.Errors = []problem.FieldError{{Pointer: "/processor/" + re.Field, Detail: fmt.Sprintf("line %d, column %d: %s", re.Line, re.Column, detail)}}
			problem.Write(w, r, pr)
			return body, false
		}
		if errors.As(err, &ce) {
			badRequest(w, r, fmt.Sprintf("processor %s does not compile at line %d, column %d: %s", ce.Field, ce.Line, ce.Column, ce.Message),
				problem.FieldError{Pointer: "/processor/" + ce.Field, Detail: fmt.Sprintf("line %d, column %d: %s", ce.Line, ce.Column, ce.Message)})
			return body, false
		}
		if err != nil {
			badRequest(w, r, "processor: "+err.Error(), problem.FieldError{Pointer: "/processor", Detail: err.Error()})
			return body, false
		}
		if prog.Empty() {
			body.Processor = nil
		}
	}
	return body, s.checkSchema(w, r, &body)
}

// checkSchema compacts the definition's schema and compiles it now, so that
// a schema that cannot be used is the client's 422 at creation rather than
// at every send. Sends compile it again, once per instance (schema.Cache).
func (s *server) checkSchema(w http.ResponseWriter, r *http.Request, body *streamBody) bool {
	if len(body.Schema) == 0 || string(body.Schema) == "null" {
		body.Schema = nil
		return true
	}
	if body.Source != nil {
		pr := problem.New(http.StatusUnprocessableEntity, "a stream that follows a topic takes no sends: a schema would check nothing")
		pr.Errors = []problem.FieldError{{Pointer: "/schema", Detail: "not with source"}}
		problem.Write(w, r, pr)
		return false
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, body.Schema); err != nil {
		badRequest(w, r, "invalid stream definition: schema: "+err.Error(), problem.FieldError{Pointer: "/schema", Detail: err.Error()})
		return false
	}
	body.Schema = buf.Bytes()
	err := schema.Check(body.Schema, s.schemas().Config())
	var ce *schema.CompileError
	switch {
	case errors.As(err, &ce):
		pr := problem.New(http.StatusUnprocessableEntity, ce.Error())
		pr.Errors = []problem.FieldError{{Pointer: "/schema" + ce.Pointer, Detail: ce.Reason}}
		problem.Write(w, r, pr)
		return false
	case err != nil:
		s.fail(w, r, err)
		return false
	}
	return true
}

// definitionError says what is wrong with a stream definition in the
// contract's words, with a JSON pointer: encoding/json's own messages name
// Go types and fields ("cannot unmarshal number into Go struct field
// streamBody.name of type string").
func definitionError(data []byte, err error) (string, []problem.FieldError) {
	var typ *json.UnmarshalTypeError
	if errors.As(err, &typ) && typ.Field != "" {
		pointer := "/" + strings.ReplaceAll(typ.Field, ".", "/")
		want := "has the wrong type"
		switch k := typ.Type.Kind(); {
		case k == reflect.String:
			want = "must be a string"
		case k == reflect.Struct || k == reflect.Pointer || k == reflect.Map:
			want = "must be an object"
		}
		detail := fmt.Sprintf("%s: %s, not %s", pointer, want, jsonKind(typ.Value))
		return detail, []problem.FieldError{{Pointer: pointer, Detail: want}}
	}
	if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		field, _ := strconv.Unquote(name)
		return fmt.Sprintf("unknown member %s", name), []problem.FieldError{{Pointer: "/" + field, Detail: "unknown member"}}
	}
	var syn *json.SyntaxError
	if errors.As(err, &syn) {
		return jsonErrorDetail(data, err), nil
	}
	return "not a valid stream definition", nil
}

// jsonKind names encoding/json's Value of a type error as JSON does.
func jsonKind(v string) string {
	switch {
	case v == "number" || strings.HasPrefix(v, "number "):
		return "a number"
	case v == "bool":
		return "a boolean"
	case v == "array":
		return "an array"
	case v == "object":
		return "an object"
	case v == "string":
		return "a string"
	}
	return v
}

// create stores stream id for tenant.
func (s *server) create(w http.ResponseWriter, r *http.Request, id, tenant string) {
	body, ok := s.decodeStream(w, r)
	if !ok || (body.Source != nil && !s.checkSource(w, r, body.Source)) ||
		!s.checkStreamsQuota(w, r, tenant, id, r.Method == http.MethodPut) {
		return
	}
	st, created, err := s.Streams.Create(r.Context(), rtstream.Stream{
		ID: id, Name: body.Name, CreatedAt: time.Now().UTC(), Processor: body.Processor, Tenant: tenant, Source: body.Source,
		Schema: body.Schema,
	})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
		w.Header().Set("Location", "/v1/streams/"+st.ID)
	}
	writeJSON(w, status, view(st))
}

func (s *server) createStream(w http.ResponseWriter, r *http.Request) {
	s.create(w, r, watermill.NewULID(), principal(r).Tenant)
}

func (s *server) putStream(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r)
	if !ok {
		return
	}
	p := principal(r)
	tenant := p.Tenant
	if p.Has(middleware.ScopeAdmin) {
		// An admin's PUT of another tenant's stream keeps its owner: the
		// same definition again is a 200, not a conflict over the owner.
		if st, err := s.lookupStream(r, id); err == nil {
			tenant = st.Owner()
		}
	}
	s.create(w, r, id, tenant)
}

func (s *server) getStream(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r)
	if !ok {
		return
	}
	st, err := s.lookupStream(r, id)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, view(st))
}

func (s *server) listStreams(w http.ResponseWriter, r *http.Request) {
	limit, after, perr := queryPage(r.URL.Query(), rtstream.ValidStreamID, "after must be a stream id", "invalid stream id")
	if perr != nil {
		s.badParam(w, r, perr)
		return
	}
	// An admin lists every tenant's streams, anyone else their own.
	tenant := principal(r).Tenant
	if principal(r).Has(middleware.ScopeAdmin) {
		tenant = ""
	}
	streams, err := s.Streams.List(r.Context(), tenant, after, limit+1)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	next := ""
	if len(streams) > limit {
		streams = streams[:limit]
		next = streams[limit-1].ID
	}
	views := make([]streamView, len(streams))
	for i, st := range streams {
		views[i] = view(st)
	}
	writeJSON(w, http.StatusOK, map[string]any{"streams": views, "next": next})
}

func (s *server) deleteStream(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r)
	if !ok {
		return
	}
	if err := s.streamExists(r, id); err != nil {
		s.fail(w, r, err) // another tenant's stream is not found either
		return
	}
	if err := s.Streams.Delete(r.Context(), id); err != nil {
		s.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
