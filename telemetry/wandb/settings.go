package wandb

import (
	"crypto/rand"
	"fmt"
	"math/big"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Mode says where a run's data goes.
type Mode string

const (
	// ModeOnline writes the run locally and uploads it while it runs.
	ModeOnline Mode = "online"
	// ModeOffline only writes the run locally; `anonymize wandb sync`
	// uploads it later.
	ModeOffline Mode = "offline"
	// ModeDisabled records nothing.
	ModeDisabled Mode = "disabled"
)

// Defaults used when the environment leaves a setting empty.
const (
	DefaultBaseURL = "https://api.wandb.ai"
	DefaultProject = "anonymize"
)

// Settings configure a run and the uploads. SettingsFromEnv fills every
// field but Upload from the variables the official W&B client also reads, so
// a user's existing W&B setup works unchanged.
type Settings struct {
	APIKey  string // WANDB_API_KEY
	BaseURL string // WANDB_BASE_URL, without a trailing slash
	Entity  string // WANDB_ENTITY; empty means the API key's default entity
	Project string // WANDB_PROJECT
	Mode    Mode   // WANDB_MODE
	RunID   string // WANDB_RUN_ID
	RunName string // WANDB_NAME, the display name; empty lets W&B pick one
	Dir     string // WANDB_DIR; runs are kept in <Dir>/wandb/

	// Upload tunes the uploader. It is not read from the environment; the
	// zero value means the defaults, which tests shorten.
	Upload UploadOptions
}

// UploadOptions tune batching and retries. Zero fields take the defaults
// given with each one.
type UploadOptions struct {
	// FlushInterval is how long the online uploader waits between batches
	// when it is not behind (default 1 s).
	FlushInterval time.Duration
	// MaxBatchLines caps the lines of one file in one request (default 500).
	MaxBatchLines int
	// MaxBatchBytes caps the content of one request (default 4 MiB); a
	// single longer line still goes, alone.
	MaxBatchBytes int
	// RetryInitial is the first backoff (default 500 ms); each retry
	// doubles it, with jitter, up to RetryMax (default 30 s).
	RetryInitial, RetryMax time.Duration
	// SyncAttempts caps the attempts of one request during Sync (default
	// 8). The online uploader retries until Run.Finish's deadline instead.
	SyncAttempts int
	// RequestTimeout bounds one HTTP attempt (default 60 s), so a server
	// that accepts a request and never answers costs a retry, not the run.
	RequestTimeout time.Duration
	// SummaryInterval debounces rewrites of wandb-summary.json (default 1 s).
	SummaryInterval time.Duration
	// HTTPClient sends the requests (default: http.DefaultClient; each
	// attempt is bounded by RequestTimeout and the caller's context).
	HTTPClient *http.Client
}

func (o UploadOptions) withDefaults() UploadOptions {
	if o.FlushInterval <= 0 {
		o.FlushInterval = time.Second
	}
	if o.MaxBatchLines <= 0 {
		o.MaxBatchLines = 500
	}
	if o.MaxBatchBytes <= 0 {
		o.MaxBatchBytes = 4 << 20
	}
	if o.RetryInitial <= 0 {
		o.RetryInitial = 500 * time.Millisecond
	}
	if o.RetryMax <= 0 {
		o.RetryMax = 30 * time.Second
	}
	if o.RetryMax < o.RetryInitial {
		o.RetryMax = o.RetryInitial
	}
	if o.SyncAttempts <= 0 {
		o.SyncAttempts = 8
	}
	if o.RequestTimeout <= 0 {
		o.RequestTimeout = 60 * time.Second
	}
	if o.SummaryInterval <= 0 {
		o.SummaryInterval = time.Second
	}
	if o.HTTPClient == nil {
		o.HTTPClient = http.DefaultClient
	}
	return o
}

// SettingsFromEnv reads the W&B settings through getenv (os.Getenv in the
// program, a map in tests). It fails only on values that cannot work, and
// names the variable to fix.
func SettingsFromEnv(getenv func(string) string) (Settings, error) {
	get := func(k string) string { return strings.TrimSpace(getenv(k)) }
	s := Settings{
		APIKey:  get("WANDB_API_KEY"),
		BaseURL: get("WANDB_BASE_URL"),
		Entity:  get("WANDB_ENTITY"),
		Project: get("WANDB_PROJECT"),
		RunID:   get("WANDB_RUN_ID"),
		RunName: get("WANDB_NAME"),
		Dir:     get("WANDB_DIR"),
	}

	switch m := strings.ToLower(get("WANDB_MODE")); m {
	case "", "online", "run":
		s.Mode = ModeOnline
	case "offline", "dryrun":
		s.Mode = ModeOffline
	case "disabled":
		s.Mode = ModeDisabled
	default:
		return Settings{}, fmt.Errorf("WANDB_MODE=%q is not a W&B mode: use online, offline or disabled", getenv("WANDB_MODE"))
	}

	if s.BaseURL == "" {
		s.BaseURL = DefaultBaseURL
	}
	s.BaseURL = strings.TrimRight(s.BaseURL, "/")
	if u, err := url.Parse(s.BaseURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return Settings{}, fmt.Errorf("WANDB_BASE_URL=%q is not an http(s) URL such as %s", getenv("WANDB_BASE_URL"), DefaultBaseURL)
	}

	if s.Project == "" {
		s.Project = DefaultProject
	}
	for _, v := range []struct{ name, value string }{
		{"WANDB_PROJECT", s.Project},
		{"WANDB_ENTITY", s.Entity},
		{"WANDB_RUN_ID", s.RunID},
	} {
		if err := checkPathName(v.value); err != nil {
			return Settings{}, fmt.Errorf("%s=%q %v", v.name, v.value, err)
		}
	}

	if s.RunID == "" {
		id, err := NewRunID()
		if err != nil {
			return Settings{}, err
		}
		s.RunID = id
	}
	if s.Dir == "" {
		s.Dir = "."
	}
	return s, nil
}

// checkPathName rejects what would break the run folder's name or the
// upload URL; W&B itself refuses these characters in names and run IDs.
func checkPathName(v string) error {
	if v == "." || v == ".." {
		return fmt.Errorf("cannot be %q", v)
	}
	if i := strings.IndexAny(v, "/\\#?%:\x00 \t\r\n"); i >= 0 {
		return fmt.Errorf("contains %q, which W&B does not allow in names", v[i])
	}
	return nil
}

const runIDAlphabet = "abcdefghijklmnopqrstuvwxyz0123456789"

// NewRunID returns 8 random characters from [a-z0-9], the form of the run
// IDs W&B generates.
func NewRunID() (string, error) {
	b := make([]byte, 8)
	n := big.NewInt(int64(len(runIDAlphabet)))
	for i := range b {
		r, err := rand.Int(rand.Reader, n)
		if err != nil {
			return "", fmt.Errorf("generate a W&B run id: %w", err)
		}
		b[i] = runIDAlphabet[r.Int64()]
	}
	return string(b), nil
}
