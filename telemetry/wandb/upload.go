package wandb

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/anonymize-dev/anonymize/internal/retry"
)

// upsertBucketQuery creates the run, or updates it when it exists: the
// same call serves a first upload, a resumed one and a sync.
const upsertBucketQuery = `mutation UpsertBucket($id: String, $name: String, $project: String, $entity: String, $displayName: String, $config: JSONString, $host: String, $program: String, $jobType: String, $summaryMetrics: JSONString) { upsertBucket(input: {id: $id, name: $name, modelName: $project, entityName: $entity, displayName: $displayName, config: $config, host: $host, jobProgram: $program, jobType: $jobType, summaryMetrics: $summaryMetrics}) { bucket { id name displayName project { name entity { name } } } inserted } }`

// client sends requests to the W&B API with the retry policy: backoff with
// jitter on 429, 5xx and transport failures, none on other answers.
type client struct {
	base, apiKey string
	opts         UploadOptions
	// attempts caps the tries of one request; 0 retries until ctx ends.
	attempts int
	// onRetry, when set, hears every failure that will be retried, and
	// the delay before the next try.
	onRetry func(err error, delay time.Duration)
}

// apiError is an HTTP answer other than 2xx.
type apiError struct {
	code       int
	status     string
	msg        string // the server's explanation, if it gave one
	retryAfter time.Duration
}

func (e *apiError) Error() string {
	var s string
	switch e.code {
	case http.StatusUnauthorized:
		s = "W&B rejected the API key (401 Unauthorized): check WANDB_API_KEY"
	case http.StatusForbidden:
		s = "W&B refused access (403 Forbidden): check that the API key may write to WANDB_ENTITY and WANDB_PROJECT"
	case http.StatusNotFound:
		s = "W&B answered 404 Not Found: check WANDB_BASE_URL, WANDB_ENTITY and WANDB_PROJECT"
	default:
		s = "W&B answered " + e.status
	}
	if e.msg != "" {
		s += " (" + e.msg + ")"
	}
	return s
}

// graphQLError is a GraphQL failure inside a 200 answer; W&B reports
// refusals (an unknown entity, a deleted run) this way.
type graphQLError struct{ messages []string }

func (e *graphQLError) Error() string {
	return "W&B refused the run: " + strings.Join(e.messages, "; ")
}

// retriable says whether sending the same request again may succeed.
func retriable(err error) bool {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae.code == http.StatusTooManyRequests || ae.code == http.StatusRequestTimeout || ae.code >= 500
	}
	var ge *graphQLError
	var le *localError
	return !errors.As(err, &ge) && !errors.As(err, &le)
}

// localError is a failure on this side (a request that cannot be built).
type localError struct{ err error }

func (e *localError) Error() string { return e.err.Error() }
func (e *localError) Unwrap() error { return e.err }

// post sends body to url until it succeeds, a failure is final, the
// attempts run out or ctx ends, under the program's retry policy (backoff
// doubling from RetryInitial to RetryMax with jitter, a Retry-After
// honoured up to RetryMax). Every attempt sends the very same bytes: after
// an ambiguous failure (the connection dropped after the server stored the
// lines) the server gets the same offsets again and overwrites instead of
// duplicating.
func (c *client) post(ctx context.Context, url string, body []byte) ([]byte, error) {
	var resp []byte
	tries := 0
	p := retry.Policy{Initial: c.opts.RetryInitial, Max: c.opts.RetryMax, Tries: c.attempts,
		Notify: func(err error, delay time.Duration) {
			if c.onRetry != nil {
				c.onRetry(err, delay)
			}
		}}
	err := retry.Do(ctx, p, func(ctx context.Context) (bool, error) {
		tries++
		var err error
		resp, err = c.once(ctx, url, body)
		var ae *apiError
		switch {
		case err == nil:
		case !retriable(err):
			err = retry.Permanent(err)
		case errors.As(err, &ae):
			err = retry.After(err, ae.retryAfter)
		}
		return false, err
	})
	switch {
	case err == nil:
		return resp, nil
	case ctx.Err() != nil:
		return nil, fmt.Errorf("%w (last attempt: %v)", ctx.Err(), err)
	case c.attempts > 0 && tries >= c.attempts && retriable(err):
		return nil, fmt.Errorf("gave up after %d attempts: %w", tries, err)
	}
	return nil, err
}

func (c *client) once(ctx context.Context, url string, body []byte) ([]byte, error) {
	actx, cancel := context.WithTimeout(ctx, c.opts.RequestTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(actx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return nil, &localError{err}
	}
	req.SetBasicAuth("api", c.apiKey)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "anonymize-wandb")
	resp, err := c.opts.HTTPClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if resp.StatusCode/100 == 2 {
		if err != nil {
			// Cut off mid-answer: the request may or may not have been
			// applied, which resending the same bytes makes harmless.
			return nil, fmt.Errorf("read W&B answer: %w", err)
		}
		return b, nil
	}
	ae := &apiError{code: resp.StatusCode, status: resp.Status, msg: serverMessage(b)}
	if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
		ae.retryAfter = time.Duration(s) * time.Second
	}
	return nil, ae
}

// serverMessage extracts a short explanation from an error body.
func serverMessage(b []byte) string {
	var j struct {
		Error  any `json:"error"`
		Errors []struct {
			Message string `json:"message"`
		} `json:"errors"`
	}
	msg := ""
	if json.Unmarshal(b, &j) == nil {
		switch {
		case j.Error != nil:
			msg = fmt.Sprint(j.Error)
		case len(j.Errors) > 0:
			msg = j.Errors[0].Message
		}
	} else {
		msg = string(b)
	}
	msg = strings.Join(strings.Fields(msg), " ")
	if len(msg) > 200 {
		msg = msg[:200] + "…"
	}
	return msg
}

// bucket is what upsertBucket answers about the run.
type bucket struct {
	ID, Name, Entity, Project string
}

// configJSON turns the caller's config into W&B's form, each value boxed
// as {"value": v, "desc": null}.
func configJSON(cfg map[string]any) (string, error) {
	type entry struct {
		Value any     `json:"value"`
		Desc  *string `json:"desc"`
	}
	boxed := make(map[string]entry, len(cfg))
	for k, v := range cfg {
		boxed[k] = entry{Value: v}
	}
	b, err := json.Marshal(boxed)
	return string(b), err
}

func (c *client) upsertBucket(ctx context.Context, ri runInfo, entity, project string) (bucket, error) {
	cfg, err := configJSON(ri.Config)
	if err != nil {
		return bucket{}, fmt.Errorf("encode the run config: %w", err)
	}
	nullable := func(s string) any {
		if s == "" {
			return nil
		}
		return s
	}
	body, err := json.Marshal(map[string]any{
		"query": upsertBucketQuery,
		"variables": map[string]any{
			"id":             nil,
			"name":           ri.ID,
			"project":        project,
			"entity":         nullable(entity),
			"displayName":    nullable(ri.DisplayName),
			"config":         cfg,
			"host":           nullable(ri.Host),
			"program":        nullable(ri.Program),
			"jobType":        nullable(ri.JobType),
			"summaryMetrics": nil,
		},
	})
	if err != nil {
		return bucket{}, fmt.Errorf("encode the run: %w", err)
	}
	resp, err := c.post(ctx, c.base+"/graphql", body)
	if err != nil {
		return bucket{}, fmt.Errorf("create the W&B run: %w", err)
	}
	var r struct {
		Data struct {
			UpsertBucket struct {
				Bucket *struct {
					ID      string `json:"id"`
					Name    string `json:"name"`
					Project struct {
						Name   string `json:"name"`
						Entity struct {
							Name string `json:"name"`
						} `json:"entity"`
					} `json:"project"`
				} `json:"bucket"`
			} `json:"upsertBucket"`
		} `json:"data"`
		Errors []struct {
			Message string `json:"message"`
		} `json:"errors"`
	}
	if err := json.Unmarshal(resp, &r); err != nil {
		return bucket{}, fmt.Errorf("create the W&B run: %w", &graphQLError{messages: []string{"unreadable answer: " + err.Error()}})
	}
	if len(r.Errors) > 0 {
		ge := &graphQLError{}
		for _, e := range r.Errors {
			ge.messages = append(ge.messages, e.Message)
		}
		return bucket{}, fmt.Errorf("create the W&B run: %w", ge)
	}
	b := r.Data.UpsertBucket.Bucket
	if b == nil || b.Project.Name == "" || b.Project.Entity.Name == "" {
		return bucket{}, fmt.Errorf("create the W&B run: %w", &graphQLError{messages: []string{"the answer names no project or entity"}})
	}
	return bucket{ID: b.ID, Name: b.Name, Entity: b.Project.Entity.Name, Project: b.Project.Name}, nil
}

// tail reads the whole lines of a growing file from a line offset on.
type tail struct {
	path string
	line int   // lines already uploaded
	pos  int64 // their length in bytes
}

// openTail positions a tail after the first line lines of path.
func openTail(path string, line int) (*tail, error) {
	t := &tail{path: path}
	if line == 0 {
		return t, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r := bufio.NewReaderSize(f, 64<<10)
	for t.line < line {
		s, err := r.ReadSlice('\n')
		t.pos += int64(len(s))
		if err == bufio.ErrBufferFull {
			continue // a long line: keep counting its bytes
		}
		if err != nil {
			return nil, fmt.Errorf("%s has %d lines but %s says %d were uploaded", path, t.line, syncFileName, line)
		}
		t.line++
	}
	return t, nil
}

// read returns up to maxLines whole lines (at least one, else at most
// maxBytes of them) after the tail, the byte offset after them, and
// whether it stopped at a limit rather than at the end of the data.
func (t *tail) read(maxLines, maxBytes int) (lines []string, next int64, more bool, err error) {
	f, err := os.Open(t.path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, t.pos, false, nil
	}
	if err != nil {
		return nil, 0, false, err
	}
	defer f.Close()
	if _, err := f.Seek(t.pos, io.SeekStart); err != nil {
		return nil, 0, false, fmt.Errorf("read %s: %w", t.path, err)
	}
	r := bufio.NewReaderSize(f, 64<<10)
	next, size := t.pos, 0
	for len(lines) < maxLines {
		s, err := r.ReadString('\n')
		if err == io.EOF {
			// Nothing, or a line the writer has not finished.
			return lines, next, false, nil
		}
		if err != nil {
			return nil, 0, false, fmt.Errorf("read %s: %w", t.path, err)
		}
		if len(lines) > 0 && size+len(s) > maxBytes {
			return lines, next, true, nil
		}
		lines = append(lines, strings.TrimRight(s, "\r\n"))
		size += len(s)
		next += int64(len(s))
	}
	return lines, next, true, nil
}

// uploader sends one run folder: creates the run, then streams what the
// files hold beyond sync.json's offsets. The online run and Sync both use
// it, so an upload that stopped anywhere resumes at the same lines.
type uploader struct {
	c       *client
	dir     string
	info    runInfo
	state   syncState
	history *tail
	events  *tail
	// entity and project to ask for when the server has not named them.
	entity, project string
}

func newUploader(c *client, dir string, info runInfo, state syncState, entity, project string) (*uploader, error) {
	files := filepath.Join(dir, filesDirName)
	h, err := openTail(filepath.Join(files, historyFileName), state.HistoryLines)
	if err != nil {
		return nil, err
	}
	e, err := openTail(filepath.Join(files, eventsFileName), state.EventsLines)
	if err != nil {
		return nil, err
	}
	return &uploader{c: c, dir: dir, info: info, state: state, history: h, events: e, entity: entity, project: project}, nil
}

func (u *uploader) save() error {
	u.state.UpdatedAt = time.Now().UTC()
	return writeJSONFile(filepath.Join(u.dir, syncFileName), u.state, true)
}

// fail records why the upload stopped, for the person who looks later.
func (u *uploader) fail(err error) error {
	u.state.LastError = err.Error()
	_ = u.save() // the error being reported matters more
	return err
}

// create upserts the run. Names the server answered before win over the
// settings, so a resumed upload lands in the same run.
func (u *uploader) create(ctx context.Context) error {
	entity, project := u.entity, u.project
	if u.state.Entity != "" {
		entity, project = u.state.Entity, u.state.Project
	}
	b, err := u.c.upsertBucket(ctx, u.info, entity, project)
	if err != nil {
		return u.fail(err)
	}
	u.state.Entity, u.state.Project = b.Entity, b.Project
	u.state.LastError = ""
	if err := u.save(); err != nil {
		return fmt.Errorf("record the upload: %w", err)
	}
	return nil
}

type fileChunk struct {
	Offset  int      `json:"offset"`
	Content []string `json:"content"`
}

// push sends one batch: new history and events lines and the summary if it
// changed. With exitCode set it sends the run's completion with the batch
// that empties the files (alone when nothing is left). It reports whether
// a limit cut the batch short, so the caller goes on at once.
func (u *uploader) push(ctx context.Context, exitCode *int) (more bool, err error) {
	budget := u.c.opts.MaxBatchBytes / 2
	hl, hnext, hmore, err := u.history.read(u.c.opts.MaxBatchLines, budget)
	if err != nil {
		return false, u.fail(err)
	}
	el, enext, emore, err := u.events.read(u.c.opts.MaxBatchLines, budget)
	if err != nil {
		return false, u.fail(err)
	}
	summary, sumHash, err := readSummary(u.dir)
	if err != nil {
		return false, u.fail(err)
	}

	more = hmore || emore
	files := map[string]fileChunk{}
	if len(hl) > 0 {
		files[historyFileName] = fileChunk{Offset: u.history.line, Content: hl}
	}
	if len(el) > 0 {
		files[eventsFileName] = fileChunk{Offset: u.events.line, Content: el}
	}
	if sumHash != "" && sumHash != u.state.SummarySHA256 {
		files[summaryFileName] = fileChunk{Offset: 0, Content: []string{string(summary)}}
	}
	complete := exitCode != nil && !more
	if len(files) == 0 && !complete {
		return false, nil
	}
	req := map[string]any{"files": files}
	if complete {
		req["complete"] = true
		req["exitcode"] = *exitCode
	}
	body, err := json.Marshal(req)
	if err != nil {
		return false, u.fail(fmt.Errorf("encode the upload: %w", err))
	}
	if _, err := u.c.post(ctx, u.fileStreamURL(), body); err != nil {
		return false, u.fail(fmt.Errorf("upload the run data: %w", err))
	}

	u.history.line += len(hl)
	u.history.pos = hnext
	u.events.line += len(el)
	u.events.pos = enext
	u.state.HistoryLines, u.state.EventsLines = u.history.line, u.events.line
	if _, ok := files[summaryFileName]; ok {
		u.state.SummarySHA256 = sumHash
	}
	if complete {
		now := time.Now().UTC()
		u.state.Completed, u.state.ExitCode, u.state.CompletedAt = true, exitCode, &now
	}
	u.state.LastError = ""
	if err := u.save(); err != nil {
		return false, fmt.Errorf("record the upload: %w", err)
	}
	return more, nil
}

// pushAll sends batches until the files hold nothing new.
func (u *uploader) pushAll(ctx context.Context) error { return u.pushUntilDone(ctx, nil) }

// finish sends the rest and then the completion.
func (u *uploader) finish(ctx context.Context, exitCode int) error {
	return u.pushUntilDone(ctx, &exitCode)
}

func (u *uploader) pushUntilDone(ctx context.Context, exitCode *int) error {
	for {
		more, err := u.push(ctx, exitCode)
		if err != nil || !more {
			return err
		}
	}
}

// readSummary returns a run's wandb-summary.json, trimmed, and the hash
// that tells whether the server has this version ("" when there is none).
// Uploading and reporting both compare with it, so they cannot disagree.
func readSummary(dir string) (summary []byte, hash string, err error) {
	summary, err = os.ReadFile(filepath.Join(dir, filesDirName, summaryFileName))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, "", fmt.Errorf("read the summary: %w", err)
	}
	summary = bytes.TrimSpace(summary)
	if len(summary) == 0 {
		return nil, "", nil
	}
	h := sha256.Sum256(summary)
	return summary, hex.EncodeToString(h[:]), nil
}

func (u *uploader) fileStreamURL() string {
	return u.c.base + "/files/" + url.PathEscape(u.state.Entity) + "/" + url.PathEscape(u.state.Project) + "/" + url.PathEscape(u.info.ID) + "/file_stream"
}

// runURL is where a person sees the run: W&B's cloud serves its pages on
// another host than its API; a W&B server serves both on one.
func runURL(base, entity, project, id string) string {
	app := base
	if u, err := url.Parse(base); err == nil && u.Host == "api.wandb.ai" {
		app = "https://wandb.ai"
	}
	return app + "/" + url.PathEscape(entity) + "/" + url.PathEscape(project) + "/runs/" + url.PathEscape(id)
}
