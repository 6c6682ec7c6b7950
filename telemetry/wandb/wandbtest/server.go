package wandbtest

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
)

// Endpoints, as Fault.Endpoint and Request.Endpoint name them.
const (
	EndpointGraphQL    = "graphql"
	EndpointFileStream = "file_stream"
)

// DefaultEntity is the entity runs get when the client names none, like
// the API key's default entity on W&B.
const DefaultEntity = "test-entity"

// Fault is a failure the server plays instead of (or after) handling a
// request.
type Fault struct {
	// Status answers with this HTTP status without handling the request
	// (500, 503, 429...).
	Status int
	// Drop handles the request, then drops the connection in the middle of
	// the answer: the client cannot know whether it was applied.
	Drop bool
	// GraphQLError answers 200 with this message in GraphQL "errors".
	GraphQLError string
	// Endpoint limits the fault to one endpoint; empty matches any.
	Endpoint string
}

// Request is one request as the server saw it.
type Request struct {
	Endpoint string // EndpointGraphQL, EndpointFileStream or the path
	Path     string
	Status   int    // what was answered; 0 for a dropped connection
	Fault    string // the fault played, if any
}

// File is one streamed file of a run.
type File struct {
	// Lines holds the stored content by line offset.
	Lines map[int]string
	// Received counts how many times each offset arrived.
	Received map[int]int
}

// Len is the number of offsets stored.
func (f File) Len() int { return len(f.Lines) }

// Gaps lists the offsets missing below the highest one stored.
func (f File) Gaps() []int {
	var gaps []int
	hi := -1
	for o := range f.Lines {
		hi = max(hi, o)
	}
	for o := 0; o < hi; o++ {
		if _, ok := f.Lines[o]; !ok {
			gaps = append(gaps, o)
		}
	}
	return gaps
}

// Resent lists, sorted, the offsets that arrived more than once.
func (f File) Resent() []int {
	var r []int
	for o, n := range f.Received {
		if n > 1 {
			r = append(r, o)
		}
	}
	slices.Sort(r)
	return r
}

// Rows parses the lines in offset order; gaps are skipped.
func (f File) Rows() ([]map[string]any, error) {
	offsets := slices.Sorted(maps.Keys(f.Lines))
	rows := make([]map[string]any, 0, len(offsets))
	for _, o := range offsets {
		var m map[string]any
		if err := json.Unmarshal([]byte(f.Lines[o]), &m); err != nil {
			return nil, fmt.Errorf("line %d: %w", o, err)
		}
		rows = append(rows, m)
	}
	return rows, nil
}

func (f File) clone() File {
	return File{Lines: maps.Clone(f.Lines), Received: maps.Clone(f.Received)}
}

// Run is what the server holds about one run.
type Run struct {
	Entity, Project, Name string
	DisplayName           string
	// Config is the run's config as sent: {"key": {"value": v, "desc": ...}}.
	Config map[string]any
	// Variables are the last upsertBucket's GraphQL variables.
	Variables map[string]any
	// Upserts counts upsertBucket calls for the run.
	Upserts int
	History File
	Events  File
	// Summary is the latest wandb-summary.json; SummaryUpdates counts them.
	Summary        map[string]any
	SummaryUpdates int
	// Complete and ExitCode come from the request marking the run done;
	// CompleteCount counts such requests.
	Complete      bool
	ExitCode      *int
	CompleteCount int
}

func (r *Run) clone() Run {
	c := *r
	c.Config = maps.Clone(r.Config)
	c.Variables = maps.Clone(r.Variables)
	c.History, c.Events = r.History.clone(), r.Events.clone()
	c.Summary = maps.Clone(r.Summary)
	if r.ExitCode != nil {
		v := *r.ExitCode
		c.ExitCode = &v
	}
	return c
}

// Server is the fake. Its methods are safe to call while clients talk to
// it.
type Server struct {
	// URL is the base URL, WANDB_BASE_URL's value.
	URL string
	// APIKey is the only key accepted (user "api" in basic auth).
	APIKey string

	srv     *httptest.Server
	closing chan struct{}
	once    sync.Once

	mu                sync.Mutex
	runs              map[string]*Run
	order             []string
	requests          []Request
	faults            []Fault
	unauthorizedAfter int // requests still allowed before 401s; -1: never
	hang              bool
	hanging           int
}

// NewServer starts a fake server accepting apiKey and closes it when the
// test ends.
func NewServer(t testing.TB, apiKey string) *Server {
	t.Helper()
	s := Start(apiKey)
	t.Cleanup(s.Close)
	return s
}

// Start starts a fake server accepting apiKey on loopback, outside a test
// (for local trials and measurements); the caller closes it.
func Start(apiKey string) *Server {
	s := &Server{APIKey: apiKey, closing: make(chan struct{}), runs: map[string]*Run{}, unauthorizedAfter: -1}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /graphql", s.serve(EndpointGraphQL, s.graphql))
	mux.HandleFunc("POST /files/{entity}/{project}/{run}/file_stream", s.serve(EndpointFileStream, s.fileStream))
	s.srv = httptest.NewServer(mux)
	s.URL = s.srv.URL
	return s
}

// Close stops the server, releasing hanging requests.
func (s *Server) Close() {
	s.once.Do(func() {
		close(s.closing)
		s.srv.CloseClientConnections()
		s.srv.Close()
	})
}

// FailNext answers the next n requests with status (500, 429...) without
// handling them.
func (s *Server) FailNext(n, status int) { s.Inject(n, Fault{Status: status}) }

// DropNext handles the next n requests, then drops their connections
// mid-answer.
func (s *Server) DropNext(n int) { s.Inject(n, Fault{Drop: true}) }

// Inject queues n copies of f; each matching request plays one.
func (s *Server) Inject(n int, f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		s.faults = append(s.faults, f)
	}
}

// UnauthorizedAfter lets n more requests through, then answers 401 to
// every request, as when a key is revoked.
func (s *Server) UnauthorizedAfter(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.unauthorizedAfter = n
}

// Hang makes requests (on) wait, unanswered, until their client gives up
// or the server closes.
func (s *Server) Hang(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hang = on
}

// Hanging is the number of requests hanging now.
func (s *Server) Hanging() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hanging
}

// ClearFaults removes every fault: queued ones, 401s and hangs.
func (s *Server) ClearFaults() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults, s.unauthorizedAfter, s.hang = nil, -1, false
}

// Run returns a copy of what the server holds about a run.
func (s *Server) Run(entity, project, name string) (Run, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.runs[runKey(entity, project, name)]
	if !ok {
		return Run{}, false
	}
	return r.clone(), true
}

// Runs returns copies of every run, in order of creation.
func (s *Server) Runs() []Run {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Run, 0, len(s.order))
	for _, k := range s.order {
		out = append(out, s.runs[k].clone())
	}
	return out
}

// Requests returns the request log, oldest first.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.requests)
}

// Count returns how many logged requests pass keep.
func (s *Server) Count(keep func(Request) bool) int {
	n := 0
	for _, r := range s.Requests() {
		if keep(r) {
			n++
		}
	}
	return n
}

func runKey(entity, project, name string) string { return entity + "/" + project + "/" + name }

// answer is what a handler decided; serve writes it.
type answer struct {
	status int
	body   any
}

func (s *Server) serve(endpoint string, handle func(*http.Request, []byte) answer) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var body []byte
		if r.Body != nil {
			var err error
			body, err = io.ReadAll(r.Body)
			if err != nil {
				return // the client went away
			}
		}
		s.mu.Lock()
		idx := len(s.requests)
		s.requests = append(s.requests, Request{Endpoint: endpoint, Path: r.URL.Path})
		logged := func(status int, fault string) {
			s.requests[idx].Status, s.requests[idx].Fault = status, fault
		}

		if user, key, ok := r.BasicAuth(); !ok || user != "api" || key != s.APIKey {
			logged(http.StatusUnauthorized, "")
			s.mu.Unlock()
			writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "invalid api key"})
			return
		}
		if s.hang {
			s.hanging++
			logged(0, "hang")
			s.mu.Unlock()
			select {
			case <-r.Context().Done():
			case <-s.closing:
			}
			s.mu.Lock()
			s.hanging--
			s.mu.Unlock()
			return
		}
		if s.unauthorizedAfter == 0 {
			logged(http.StatusUnauthorized, "unauthorized")
			s.mu.Unlock()
			writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "api key revoked"})
			return
		}
		if s.unauthorizedAfter > 0 {
			s.unauthorizedAfter--
		}
		var fault *Fault
		for i, f := range s.faults {
			if f.Endpoint == "" || f.Endpoint == endpoint {
				fault = &f
				s.faults = slices.Delete(s.faults, i, i+1)
				break
			}
		}
		switch {
		case fault != nil && fault.Status != 0:
			logged(fault.Status, fmt.Sprintf("status %d", fault.Status))
			s.mu.Unlock()
			if fault.Status == http.StatusTooManyRequests {
				w.Header().Set("Retry-After", "0")
			}
			writeJSON(w, fault.Status, map[string]string{"error": "injected failure"})
			return
		case fault != nil && fault.GraphQLError != "":
			logged(http.StatusOK, "graphql error")
			s.mu.Unlock()
			writeJSON(w, http.StatusOK, map[string]any{"errors": []map[string]string{{"message": fault.GraphQLError}}})
			return
		}
		a := handle(r, body)
		if fault != nil && fault.Drop {
			logged(0, "drop")
			s.mu.Unlock()
			dropMidAnswer(w)
			return
		}
		logged(a.status, "")
		s.mu.Unlock()
		writeJSON(w, a.status, a.body)
	}
}

// dropMidAnswer starts a 200 answer and closes the connection before its
// body is complete.
func dropMidAnswer(w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		panic("wandbtest: the response cannot be hijacked")
	}
	conn, buf, err := hj.Hijack()
	if err != nil {
		return
	}
	defer conn.Close()
	_, _ = buf.WriteString("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"exit")
	_ = buf.Flush()
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func (s *Server) graphql(_ *http.Request, body []byte) answer {
	var req struct {
		Query     string         `json:"query"`
		Variables map[string]any `json:"variables"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		return answer{http.StatusBadRequest, map[string]string{"error": "bad json: " + err.Error()}}
	}
	if !strings.Contains(req.Query, "upsertBucket(") {
		return answer{http.StatusOK, map[string]any{"errors": []map[string]string{{"message": "wandbtest: only upsertBucket is implemented"}}}}
	}
	str := func(k string) string {
		v, _ := req.Variables[k].(string)
		return v
	}
	name, project, entity := str("name"), str("project"), str("entity")
	if name == "" || project == "" {
		return answer{http.StatusOK, map[string]any{"errors": []map[string]string{{"message": "name and project are required"}}}}
	}
	if entity == "" {
		entity = DefaultEntity
	}
	var config map[string]any
	if c := str("config"); c != "" {
		if err := json.Unmarshal([]byte(c), &config); err != nil {
			return answer{http.StatusOK, map[string]any{"errors": []map[string]string{{"message": "config is not a JSON string: " + err.Error()}}}}
		}
	}
	key := runKey(entity, project, name)
	r, ok := s.runs[key]
	if !ok {
		r = &Run{Entity: entity, Project: project, Name: name,
			History: File{Lines: map[int]string{}, Received: map[int]int{}},
			Events:  File{Lines: map[int]string{}, Received: map[int]int{}}}
		s.runs[key] = r
		s.order = append(s.order, key)
	}
	r.Upserts++
	r.Variables = maps.Clone(req.Variables)
	if config != nil {
		r.Config = config
	}
	if d := str("displayName"); d != "" {
		r.DisplayName = d
	}
	display := r.DisplayName
	if display == "" {
		display = "fake-run-" + name
	}
	return answer{http.StatusOK, map[string]any{"data": map[string]any{"upsertBucket": map[string]any{
		"bucket": map[string]any{
			"id":          base64.StdEncoding.EncodeToString([]byte("Run:v1:" + name + ":" + project + ":" + entity)),
			"name":        name,
			"displayName": display,
			"project":     map[string]any{"name": project, "entity": map[string]any{"name": entity}},
		},
		"inserted": !ok,
	}}}}
}

func (s *Server) fileStream(r *http.Request, body []byte) answer {
	run, ok := s.runs[runKey(r.PathValue("entity"), r.PathValue("project"), r.PathValue("run"))]
	if !ok {
		return answer{http.StatusNotFound, map[string]string{"error": "run not found: create it with upsertBucket first"}}
	}
	var req struct {
		Files map[string]struct {
			Offset  int      `json:"offset"`
			Content []string `json:"content"`
		} `json:"files"`
		Complete *bool `json:"complete"`
		ExitCode *int  `json:"exitcode"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		return answer{http.StatusBadRequest, map[string]string{"error": "bad json: " + err.Error()}}
	}
	// Check everything before storing anything, as a bad request must
	// change nothing.
	for name, f := range req.Files {
		if f.Offset < 0 {
			return answer{http.StatusBadRequest, map[string]string{"error": name + ": negative offset"}}
		}
		for i, line := range f.Content {
			if !json.Valid([]byte(line)) {
				return answer{http.StatusBadRequest, map[string]string{"error": fmt.Sprintf("%s line %d is not JSON", name, f.Offset+i)}}
			}
		}
	}
	for name, f := range req.Files {
		switch name {
		case "wandb-history.jsonl", "wandb-events.jsonl":
			dst := &run.History
			if name == "wandb-events.jsonl" {
				dst = &run.Events
			}
			for i, line := range f.Content {
				dst.Lines[f.Offset+i] = line
				dst.Received[f.Offset+i]++
			}
		case "wandb-summary.json":
			if len(f.Content) == 0 {
				continue
			}
			var m map[string]any
			_ = json.Unmarshal([]byte(f.Content[len(f.Content)-1]), &m)
			run.Summary = m
			run.SummaryUpdates++
		}
	}
	if req.Complete != nil && *req.Complete {
		run.Complete = true
		run.CompleteCount++
		if req.ExitCode != nil {
			v := *req.ExitCode
			run.ExitCode = &v
		}
	}
	return answer{http.StatusOK, map[string]any{"exitcode": nil, "limits": map[string]any{}}}
}
