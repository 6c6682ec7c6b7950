package wandb

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
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

// RetryAfter is the server's Retry-After (retry.RetryAfterError).
func (e *apiError) RetryAfter() time.Duration { return e.retryAfter }

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
		if err != nil && !retriable(err) {
			err = retry.Permanent(err)
		}
		return false, err
	})
	switch {
	case err == nil:
		return resp, nil
	case ctx.Err() != nil:
		return nil, err // the context's error, with the last attempt's
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
