package wandbtest

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

const key = "k"

// post sends a JSON body with the given key and returns status and body;
// a transport error gives status 0.
func post(t *testing.T, ctx context.Context, url, apiKey string, body any) (int, string) {
	t.Helper()
	b, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth("api", apiKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	rb, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err.Error()
	}
	return resp.StatusCode, string(rb)
}

func upsert(name, entity string) map[string]any {
	vars := map[string]any{"name": name, "project": "p", "config": `{"a":{"value":1,"desc":null}}`}
	if entity != "" {
		vars["entity"] = entity
	}
	return map[string]any{"query": "mutation UpsertBucket { upsertBucket(input: {}) { bucket { id } } }", "variables": vars}
}

func lines(offset int, content ...string) map[string]any {
	return map[string]any{"files": map[string]any{"wandb-history.jsonl": map[string]any{"offset": offset, "content": content}}}
}

func TestUpsertAndStream(t *testing.T) {
	s := NewServer(t, key)
	ctx := context.Background()
	code, body := post(t, ctx, s.URL+"/graphql", key, upsert("r1", ""))
	if code != 200 || !strings.Contains(body, `"entity":{"name":"`+DefaultEntity+`"}`) {
		t.Fatalf("upsert: %d %s", code, body)
	}
	stream := s.URL + "/files/" + DefaultEntity + "/p/r1/file_stream"
	for _, b := range []map[string]any{
		lines(0, `{"x":0}`, `{"x":1}`),
		lines(1, `{"x":1}`, `{"x":2}`), // offset 1 again: overwritten, counted
		{"files": map[string]any{"wandb-summary.json": map[string]any{"offset": 0, "content": []string{`{"x":2}`}}}, "complete": true, "exitcode": 5},
	} {
		if code, body := post(t, ctx, stream, key, b); code != 200 {
			t.Fatalf("stream: %d %s", code, body)
		}
	}
	r, ok := s.Run(DefaultEntity, "p", "r1")
	if !ok {
		t.Fatal("run not stored")
	}
	rows, err := r.History.Rows()
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 3 || rows[2]["x"] != 2.0 || len(r.History.Gaps()) != 0 {
		t.Errorf("rows %v, gaps %v", rows, r.History.Gaps())
	}
	if got := r.History.Resent(); len(got) != 1 || got[0] != 1 {
		t.Errorf("resent %v, want [1]", got)
	}
	if r.Summary["x"] != 2.0 || !r.Complete || *r.ExitCode != 5 || r.CompleteCount != 1 {
		t.Errorf("summary %v complete %v exit %v", r.Summary, r.Complete, r.ExitCode)
	}
	if r.Config["a"].(map[string]any)["value"] != 1.0 {
		t.Errorf("config %v", r.Config)
	}
}

func TestRefusals(t *testing.T) {
	s := NewServer(t, key)
	ctx := context.Background()
	for _, tc := range []struct {
		name   string
		url    string
		key    string
		body   any
		status int
	}{
		{"wrong key", s.URL + "/graphql", "nope", upsert("r", ""), 401},
		{"unknown run", s.URL + "/files/e/p/none/file_stream", key, lines(0, `{}`), 404},
		{"line not JSON", s.URL + "/files/" + DefaultEntity + "/p/r/file_stream", key, lines(0, `{"ok":1}`, `not json`), 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.status != 401 {
				if code, _ := post(t, ctx, s.URL+"/graphql", key, upsert("r", "")); code != 200 {
					t.Fatal("upsert failed")
				}
			}
			if code, body := post(t, ctx, tc.url, tc.key, tc.body); code != tc.status {
				t.Errorf("status %d (%s), want %d", code, body, tc.status)
			}
		})
	}
	// The bad batch stored nothing, not even its good line.
	if r, _ := s.Run(DefaultEntity, "p", "r"); r.History.Len() != 0 {
		t.Errorf("a rejected batch was stored: %v", r.History.Lines)
	}
}

func TestFaults(t *testing.T) {
	ctx := context.Background()
	t.Run("status then normal", func(t *testing.T) {
		s := NewServer(t, key)
		s.FailNext(2, 503)
		for i, want := range []int{503, 503, 200} {
			if code, _ := post(t, ctx, s.URL+"/graphql", key, upsert("r", "")); code != want {
				t.Errorf("request %d: %d, want %d", i, code, want)
			}
		}
		if r, _ := s.Run(DefaultEntity, "p", "r"); r.Upserts != 1 {
			t.Errorf("failed requests were applied: %d upserts", r.Upserts)
		}
	})
	t.Run("endpoint filter", func(t *testing.T) {
		s := NewServer(t, key)
		s.Inject(1, Fault{Status: 500, Endpoint: EndpointFileStream})
		if code, _ := post(t, ctx, s.URL+"/graphql", key, upsert("r", "")); code != 200 {
			t.Fatal("a file_stream fault hit graphql")
		}
		if code, _ := post(t, ctx, s.URL+"/files/"+DefaultEntity+"/p/r/file_stream", key, lines(0, `{}`)); code != 500 {
			t.Errorf("file_stream fault not played: %d", code)
		}
	})
	t.Run("drop applies the request and cuts the answer", func(t *testing.T) {
		s := NewServer(t, key)
		s.DropNext(1)
		if code, _ := post(t, ctx, s.URL+"/graphql", key, upsert("r", "")); code != 0 {
			t.Fatalf("dropped request answered %d", code)
		}
		if _, ok := s.Run(DefaultEntity, "p", "r"); !ok {
			t.Error("the dropped request was not applied")
		}
	})
	t.Run("unauthorized after", func(t *testing.T) {
		s := NewServer(t, key)
		s.UnauthorizedAfter(1)
		for i, want := range []int{200, 401, 401} {
			if code, _ := post(t, ctx, s.URL+"/graphql", key, upsert("r", "")); code != want {
				t.Errorf("request %d: %d, want %d", i, code, want)
			}
		}
		s.ClearFaults()
		if code, _ := post(t, ctx, s.URL+"/graphql", key, upsert("r", "")); code != 200 {
			t.Errorf("after ClearFaults: %d", code)
		}
	})
	t.Run("graphql error", func(t *testing.T) {
		s := NewServer(t, key)
		s.Inject(1, Fault{GraphQLError: "no such entity"})
		if code, body := post(t, ctx, s.URL+"/graphql", key, upsert("r", "")); code != 200 || !strings.Contains(body, "no such entity") {
			t.Errorf("%d %s", code, body)
		}
	})
	t.Run("hang until the client gives up", func(t *testing.T) {
		s := NewServer(t, key)
		s.Hang(true)
		cctx, cancel := context.WithCancel(ctx)
		done := make(chan int)
		go func() {
			code, _ := post(t, cctx, s.URL+"/graphql", key, upsert("r", ""))
			done <- code
		}()
		for s.Hanging() == 0 {
			time.Sleep(time.Millisecond)
		}
		cancel()
		if code := <-done; code != 0 {
			t.Errorf("a hanging request was answered %d", code)
		}
		for s.Hanging() != 0 {
			time.Sleep(time.Millisecond) // the handler must let go
		}
	})
}
