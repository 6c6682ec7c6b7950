package models

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// ManifestFile is the manifest's name on a models server, and the name of
// its cached copy in a model folder (which List compares files against).
const ManifestFile = "manifest.json"

// ErrNoModelsServer is returned when a pull has no server to pull from.
var ErrNoModelsServer = errors.New("no models server configured: set " + EnvModelsURL +
	" or pass --models-url (see models/README.md)")

// Manifest is the index a models server publishes as manifest.json; see
// models/README.md for the format.
type Manifest struct {
	Models []ManifestEntry `json:"models"`
}

// ManifestEntry is one downloadable model.
type ManifestEntry struct {
	Name string `json:"name"`
	// File is the name to install under. Registry models are always
	// installed under their registry file name, because that is where the
	// program looks; for other models it defaults to Name + ".onnx".
	File string `json:"file,omitempty"`
	// URL is absolute or relative to the manifest; empty means File next
	// to the manifest.
	URL    string `json:"url,omitempty"`
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size,omitempty"` // bytes; 0 when unknown
}

// Find returns the entry called name.
func (m *Manifest) Find(name string) (ManifestEntry, bool) {
	for _, e := range m.Models {
		if e.Name == name {
			return e, true
		}
	}
	return ManifestEntry{}, false
}

// Names lists the entries' names in manifest order.
func (m *Manifest) Names() []string {
	names := make([]string, len(m.Models))
	for i, e := range m.Models {
		names[i] = e.Name
	}
	return names
}

// ParseManifest decodes and checks a manifest. Unknown fields are ignored
// so that servers can add to the format without breaking older clients.
func ParseManifest(data []byte) (*Manifest, error) {
	var raw struct {
		Models *[]ManifestEntry `json:"models"`
	}
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, fmt.Errorf("not valid JSON: %w", err)
	}
	if raw.Models == nil {
		return nil, errors.New(`no "models" list`)
	}
	m := &Manifest{Models: *raw.Models}
	seen := make(map[string]bool)
	for i := range m.Models {
		e := &m.Models[i]
		if e.Name == "" {
			return nil, fmt.Errorf("model %d has no name", i+1)
		}
		if seen[e.Name] {
			return nil, fmt.Errorf("model %q is listed twice", e.Name)
		}
		seen[e.Name] = true
		e.SHA256 = strings.ToLower(e.SHA256)
		if b, err := hex.DecodeString(e.SHA256); err != nil || len(b) != 32 {
			return nil, fmt.Errorf("model %q: sha256 %q is not 64 hex digits", e.Name, e.SHA256)
		}
		if e.Size < 0 {
			return nil, fmt.Errorf("model %q: negative size %d", e.Name, e.Size)
		}
		if e.File != "" && !safeFileName(e.File) {
			return nil, fmt.Errorf("model %q: file %q must be a plain file name", e.Name, e.File)
		}
		if e.File == "" && !safeFileName(e.localFile()) {
			return nil, fmt.Errorf("model %q: the name cannot serve as a file name; give a file", e.Name)
		}
	}
	return m, nil
}

// localFile is the name the entry is installed under in a model folder.
func (e ManifestEntry) localFile() string {
	if m, err := Lookup(e.Name); err == nil {
		return m.File
	}
	if e.File != "" {
		return e.File
	}
	return e.Name + ".onnx"
}

// safeFileName rejects names that would let a server write outside the
// model folder or clobber something hidden.
func safeFileName(name string) bool {
	return name != "" && !strings.ContainsAny(name, `/\:`) && !strings.HasPrefix(name, ".") &&
		filepath.Base(name) == name && name != ManifestFile
}

// ResolveManifestURL returns the manifest URL for a --models-url flag value,
// falling back to $ANONYMIZE_MODELS_URL. Either may name the server's base
// URL (manifest.json is appended) or the manifest itself (a .json path).
func ResolveManifestURL(flagValue string, getenv func(string) string) (string, error) {
	raw := flagValue
	if raw == "" && getenv != nil {
		raw = getenv(EnvModelsURL)
	}
	return manifestURL(raw)
}

func manifestURL(raw string) (string, error) {
	if raw == "" {
		return "", ErrNoModelsServer
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("models server URL %q is not an http:// or https:// URL: fix --models-url or %s", raw, EnvModelsURL)
	}
	if !strings.HasSuffix(u.Path, ".json") {
		u.Path = strings.TrimSuffix(u.Path, "/") + "/" + ManifestFile
		u.RawPath = ""
	}
	return u.String(), nil
}

// PullOptions configures Pull.
type PullOptions struct {
	Client      *http.Client // nil: a client with a response-header timeout
	ManifestURL string       // manifest.json URL, or the server's base URL
	Name        string       // manifest (and usually registry) model name
	Dir         string       // model folder; created when missing
	// Progress, when set, is called as bytes arrive; done counts bytes
	// already on disk from an earlier attempt, total is -1 when unknown.
	Progress func(done, total int64)
	Logger   *slog.Logger // nil: discard

	// Test hooks; zero values pick the defaults.
	sleep        func(context.Context, time.Duration) error
	stallTimeout time.Duration
}

const (
	maxAttempts         = 4  // consecutive failures without progress
	maxTotalAttempts    = 20 // all attempts of one download
	firstBackoff        = 500 * time.Millisecond
	maxBackoff          = 8 * time.Second
	defaultStallTimeout = 60 * time.Second // no byte for this long counts as a dropped connection
	maxManifestSize     = 4 << 20
)

// Pull installs model opts.Name from the models server into opts.Dir and
// returns its path. It downloads to <file>.part, resuming what an earlier
// interrupted pull left there, checks the whole file's sha256 against the
// manifest and only then renames it into place, so a model file in the
// folder is always complete. A file already installed with the right sha256
// is not downloaded again.
func Pull(ctx context.Context, opts PullOptions) (string, error) {
	p, err := newPuller(opts)
	if err != nil {
		return "", err
	}
	return p.pull(ctx)
}

type puller struct {
	PullOptions
	log         *slog.Logger
	manifestURL string
}

func newPuller(opts PullOptions) (*puller, error) {
	mu, err := manifestURL(opts.ManifestURL)
	if err != nil {
		return nil, err
	}
	if opts.Name == "" {
		return nil, fmt.Errorf("no model named: pass one of %s", strings.Join(Names(), ", "))
	}
	if opts.Dir == "" {
		return nil, errors.New("no model folder given")
	}
	p := &puller{PullOptions: opts, log: opts.Logger, manifestURL: mu}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	if p.Client == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.ResponseHeaderTimeout = 30 * time.Second
		// No overall timeout: a large model on a slow link takes as long as
		// it takes; stalls are caught by stallTimeout instead.
		p.Client = &http.Client{Transport: t}
	}
	if p.sleep == nil {
		p.sleep = sleepCtx
	}
	if p.stallTimeout == 0 {
		p.stallTimeout = defaultStallTimeout
	}
	return p, nil
}

func (p *puller) pull(ctx context.Context) (string, error) {
	data, manifest, err := p.fetchManifest(ctx)
	if err != nil {
		return "", err
	}
	entry, ok := manifest.Find(p.Name)
	if !ok {
		msg := fmt.Sprintf("model %q is not on the models server (its manifest %s lists: %s)",
			p.Name, p.manifestURL, strings.Join(manifest.Names(), ", "))
		if _, err := Lookup(p.Name); err != nil {
			msg += "; the program knows " + strings.Join(Names(), ", ")
		}
		return "", errors.New(msg)
	}
	file := entry.localFile()
	if entry.File != "" && entry.File != file {
		p.log.Warn("manifest names another file than the program looks for; installing under the program's name",
			"model", entry.Name, "manifest_file", entry.File, "file", file)
	}
	src, err := p.fileURL(entry, file)
	if err != nil {
		return "", err
	}

	if err := os.MkdirAll(p.Dir, 0o755); err != nil {
		return "", fmt.Errorf("create model folder: %w", err)
	}
	if err := writeManifestCache(p.Dir, data); err != nil {
		// Only `models list` reads the cache; a failure is no reason to stop.
		p.log.Warn("could not cache the manifest", "err", err)
	}

	final := filepath.Join(p.Dir, file)
	switch sum, size, err := FileSHA256(final); {
	case err == nil && sum == entry.SHA256:
		p.log.Info("already installed", "model", entry.Name, "path", final)
		p.report(size, size)
		return final, nil
	case err == nil:
		p.log.Info("installed file differs from the server's; downloading again",
			"model", entry.Name, "path", final, "sha256", sum, "want", entry.SHA256)
	case !errors.Is(err, fs.ErrNotExist):
		return "", fmt.Errorf("check installed model: %w", err)
	}

	part := final + ".part"
	if err := p.download(ctx, src, part, entry); err != nil {
		return "", err
	}
	// The right bytes (the sha256 matched) may still be the wrong model:
	// a manifest that lists a pose model as the detector, an export with
	// other tensor names. Such a file is never installed where the program
	// would load it.
	if m, err := Lookup(entry.Name); err == nil {
		if err := m.Contract.CheckFile(part); err != nil {
			os.Remove(part)
			return "", fmt.Errorf("the models server's %s is not a model the program can run as its %s, so it was not installed "+
				"(tell whoever runs the server at %s): %w", entry.Name, m.Role, p.manifestURL, err)
		}
	}
	if err := os.Rename(part, final); err != nil {
		return "", fmt.Errorf("install %s: %w", final, err)
	}
	p.log.Info("installed", "model", entry.Name, "path", final, "sha256", entry.SHA256)
	return final, nil
}

func (p *puller) fileURL(e ManifestEntry, file string) (string, error) {
	base, err := url.Parse(p.manifestURL)
	if err != nil {
		return "", fmt.Errorf("models server URL: %w", err)
	}
	ref := &url.URL{Path: file}
	if e.File != "" {
		ref = &url.URL{Path: e.File}
	}
	if e.URL != "" {
		if ref, err = url.Parse(e.URL); err != nil {
			return "", fmt.Errorf("manifest %s: model %q has a malformed url %q: tell whoever runs the models server",
				p.manifestURL, e.Name, e.URL)
		}
	}
	u := base.ResolveReference(ref)
	if u.Scheme != "http" && u.Scheme != "https" {
		return "", fmt.Errorf("manifest %s: model %q has url %q, which is not http(s): tell whoever runs the models server",
			p.manifestURL, e.Name, e.URL)
	}
	return u.String(), nil
}

func (p *puller) fetchManifest(ctx context.Context) ([]byte, *Manifest, error) {
	var data []byte
	err := p.retry(ctx, "fetch manifest", func(ctx context.Context) (bool, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.manifestURL, nil)
		if err != nil {
			return false, err
		}
		req.Header.Set("User-Agent", "anonymize")
		// A proxy's stale copy would point at files the server replaced.
		req.Header.Set("Cache-Control", "no-cache")
		resp, err := p.Client.Do(req)
		if err != nil {
			return false, err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return false, statusError(resp)
		}
		data, err = io.ReadAll(io.LimitReader(resp.Body, maxManifestSize+1))
		if err != nil {
			return false, err
		}
		if len(data) > maxManifestSize {
			return false, permanent(fmt.Errorf("larger than %d bytes", maxManifestSize))
		}
		return false, nil
	})
	if err != nil {
		if ctx.Err() != nil {
			return nil, nil, fmt.Errorf("pull %s interrupted: %w", p.Name, err)
		}
		return nil, nil, fmt.Errorf("fetch manifest %s: %w: check --models-url or %s and that the models server is reachable",
			p.manifestURL, err, EnvModelsURL)
	}
	m, err := ParseManifest(data)
	if err != nil {
		return nil, nil, fmt.Errorf("manifest %s is malformed: %w (see models/README.md for the format)", p.manifestURL, err)
	}
	return data, m, nil
}

// download fetches src into part until it holds the whole file with the
// manifest's sha256. A resumed download whose result does not match is
// started once more from zero, since the bytes kept from before may belong
// to an older version of the file.
func (p *puller) download(ctx context.Context, src, part string, e ManifestEntry) error {
	for fresh := false; ; fresh = true {
		if fresh {
			if err := os.Remove(part); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("remove %s: %w", part, err)
			}
		}
		resumed := false
		err := p.retry(ctx, "download "+e.Name, func(ctx context.Context) (bool, error) {
			return p.fetchPart(ctx, src, part, e, &resumed)
		})
		if err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("pull %s interrupted (%w): run the same command again to resume", e.Name, err)
			}
			var se *sizeMismatchError
			if errors.As(err, &se) {
				os.Remove(part)
				return fmt.Errorf("download %s from %s: %w: the server's file does not match the manifest; tell whoever runs the models server",
					e.Name, src, err)
			}
			return fmt.Errorf("download %s from %s: %w: %s", e.Name, src, err, downloadHint(err))
		}

		sum, size, err := FileSHA256(part)
		if err != nil {
			return fmt.Errorf("check download: %w", err)
		}
		if sum == e.SHA256 && (e.Size == 0 || size == e.Size) {
			return nil
		}
		if resumed && !fresh {
			p.log.Warn("resumed download does not match the manifest; starting again from zero",
				"model", e.Name, "sha256", sum, "want", e.SHA256)
			continue
		}
		os.Remove(part)
		return fmt.Errorf("downloaded %s (%d bytes) has sha256 %s but the manifest says %s: "+
			"the server's file does not match the manifest; tell whoever runs the models server to regenerate it with models/export/manifest.py",
			e.Name, size, sum, e.SHA256)
	}
}

// fetchPart runs one request for the rest of part. It reports whether it
// wrote anything, so that retry can tell a flaky but progressing link from
// a dead one.
func (p *puller) fetchPart(ctx context.Context, src, part string, e ManifestEntry, resumed *bool) (progressed bool, err error) {
	// The .part is created only once the server answers with data, so a
	// failed first request leaves nothing behind.
	var offset int64
	switch st, err := os.Stat(part); {
	case err == nil:
		offset = st.Size()
	case !errors.Is(err, fs.ErrNotExist):
		return false, permanent(fmt.Errorf("stat %s: %w", part, err))
	}
	// discard throws the .part away when what it holds cannot be resumed.
	discard := func(why string) error {
		p.log.Info("starting the download again from zero", "model", e.Name, "reason", why)
		if err := os.Remove(part); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return permanent(fmt.Errorf("remove %s: %w", part, err))
		}
		offset = 0
		return nil
	}
	if e.Size > 0 && offset > e.Size {
		if err := discard(fmt.Sprintf("%s holds %d bytes, more than the %d the manifest lists", part, offset, e.Size)); err != nil {
			return false, err
		}
	}
	if e.Size > 0 && offset == e.Size {
		// Complete from an earlier run that stopped before the check.
		*resumed = true
		p.report(offset, offset)
		return false, nil
	}

	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stall := time.AfterFunc(p.stallTimeout, func() { cancel(errStalled) })
	defer stall.Stop()

	req, err := http.NewRequestWithContext(ctx, http.MethodGet, src, nil)
	if err != nil {
		return false, permanent(err)
	}
	req.Header.Set("User-Agent", "anonymize")
	// Byte offsets must count the file itself, not a compressed encoding.
	req.Header.Set("Accept-Encoding", "identity")
	if offset > 0 {
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-", offset))
		p.log.Info("resuming download", "model", e.Name, "from", offset)
	} else {
		p.log.Info("downloading", "model", e.Name, "url", src)
	}
	resp, err := p.Client.Do(req)
	if err != nil {
		return false, stallCause(ctx, err)
	}
	defer resp.Body.Close()

	total := e.Size
	switch {
	case resp.StatusCode == http.StatusPartialContent && offset > 0:
		start, _, size, ok := parseContentRange(resp.Header.Get("Content-Range"))
		if !ok || start != offset {
			// Appending bytes from another offset would corrupt the file.
			if err := discard("server answered the range request from another offset"); err != nil {
				return false, err
			}
			return false, errors.New("server resumed at the wrong offset")
		}
		if size >= 0 {
			if e.Size > 0 && size != e.Size {
				return false, permanent(&sizeMismatchError{server: size, manifest: e.Size})
			}
			total = size
		}
		*resumed = true
	case resp.StatusCode == http.StatusRequestedRangeNotSatisfiable && offset > 0:
		_, _, size, ok := parseContentRange(resp.Header.Get("Content-Range"))
		if !ok || size < 0 || size == offset {
			// The .part already holds the whole file; the hash decides.
			*resumed = true
			p.report(offset, offset)
			return false, nil
		}
		if err := discard(fmt.Sprintf("server's file is %d bytes, %s holds %d", size, part, offset)); err != nil {
			return false, err
		}
		return false, errors.New("range not satisfiable")
	case resp.StatusCode == http.StatusOK:
		if offset > 0 {
			p.log.Info("starting the download again from zero", "model", e.Name, "reason", "server ignored the range request")
			offset = 0
		}
		if resp.ContentLength >= 0 {
			if e.Size > 0 && resp.ContentLength != e.Size {
				return false, permanent(&sizeMismatchError{server: resp.ContentLength, manifest: e.Size})
			}
			total = resp.ContentLength
		}
	default:
		return false, statusError(resp)
	}
	if total == 0 {
		total = -1
	}

	flags := os.O_WRONLY | os.O_CREATE
	if offset == 0 {
		flags |= os.O_TRUNC
	}
	f, err := os.OpenFile(part, flags, 0o644)
	if err != nil {
		return false, permanent(fmt.Errorf("open %s: %w", part, err))
	}
	defer func() {
		if cerr := f.Close(); cerr != nil && err == nil {
			err = permanent(fmt.Errorf("write %s: %w", part, cerr))
		}
	}()
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return false, permanent(fmt.Errorf("seek %s: %w", part, err))
	}

	done := offset
	p.report(done, total)
	buf := make([]byte, 256<<10)
	for {
		n, rerr := resp.Body.Read(buf)
		if n > 0 {
			stall.Reset(p.stallTimeout)
			if _, err := f.Write(buf[:n]); err != nil {
				return true, permanent(fmt.Errorf("write %s: %w", part, err))
			}
			done += int64(n)
			progressed = true
			p.report(done, total)
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return progressed, stallCause(ctx, rerr)
		}
	}
	if err := f.Sync(); err != nil {
		return true, permanent(fmt.Errorf("sync %s: %w", part, err))
	}
	return progressed, nil
}

func (p *puller) report(done, total int64) {
	if p.Progress != nil {
		p.Progress(done, total)
	}
}

var errStalled = errors.New("connection stalled")

// stallCause names a stall as such rather than as the context
// cancellation that the watchdog uses to break the read.
func stallCause(ctx context.Context, err error) error {
	if cause := context.Cause(ctx); errors.Is(cause, errStalled) {
		return fmt.Errorf("no data received: %w", errStalled)
	}
	return err
}

type sizeMismatchError struct{ server, manifest int64 }

func (e *sizeMismatchError) Error() string {
	return fmt.Sprintf("the server's file is %d bytes but the manifest says %d", e.server, e.manifest)
}

// parseContentRange reads "bytes START-END/SIZE" and "bytes */SIZE"; size
// is -1 for "*". start and end are -1 in the second form.
func parseContentRange(h string) (start, end, size int64, ok bool) {
	rest, found := strings.CutPrefix(h, "bytes ")
	if !found {
		return 0, 0, 0, false
	}
	rng, sz, found := strings.Cut(rest, "/")
	if !found {
		return 0, 0, 0, false
	}
	size = -1
	if sz != "*" {
		v, err := strconv.ParseInt(sz, 10, 64)
		if err != nil || v < 0 {
			return 0, 0, 0, false
		}
		size = v
	}
	if rng == "*" {
		return -1, -1, size, true
	}
	a, b, found := strings.Cut(rng, "-")
	if !found {
		return 0, 0, 0, false
	}
	start, err1 := strconv.ParseInt(a, 10, 64)
	end, err2 := strconv.ParseInt(b, 10, 64)
	if err1 != nil || err2 != nil || start < 0 || end < start {
		return 0, 0, 0, false
	}
	return start, end, size, true
}

// httpStatusError is a non-success answer; 5xx ones are worth retrying.
type httpStatusError struct {
	code   int
	status string
}

func (e *httpStatusError) Error() string { return "server answered " + e.status }

func statusError(resp *http.Response) error {
	return &httpStatusError{code: resp.StatusCode, status: resp.Status}
}

// downloadHint says what a user can do about a failed model download.
func downloadHint(err error) string {
	var se *httpStatusError
	if errors.As(err, &se) {
		switch {
		case se.code == http.StatusNotFound || se.code == http.StatusGone:
			return "the manifest lists a file the server does not have; tell whoever runs the models server"
		case se.code == http.StatusUnauthorized || se.code == http.StatusForbidden:
			return "the models server refused access; check that you may use it"
		case se.code >= 500:
			return "the models server is failing; try again later (the download resumes where it stopped)"
		}
		return "tell whoever runs the models server"
	}
	var pe *permanentError
	if errors.As(err, &pe) {
		return "free space or fix permissions in the model folder, then run the same command again"
	}
	return "check the connection and run the same command again to resume"
}

type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// permanent marks an error that a retry cannot fix.
func permanent(err error) error { return &permanentError{err} }

func retryable(err error) bool {
	var pe *permanentError
	if errors.As(err, &pe) {
		return false
	}
	var se *httpStatusError
	if errors.As(err, &se) {
		return se.code >= 500 || se.code == http.StatusRequestTimeout || se.code == http.StatusTooManyRequests
	}
	// Connection trouble is worth another try, but a name that does not
	// resolve or a certificate that does not verify will not get better.
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) && dnsErr.IsNotFound {
		return false
	}
	var (
		unknownAuth x509.UnknownAuthorityError
		hostErr     x509.HostnameError
		invalidCert x509.CertificateInvalidError
		verifyErr   *tls.CertificateVerificationError
	)
	if errors.As(err, &unknownAuth) || errors.As(err, &hostErr) || errors.As(err, &invalidCert) || errors.As(err, &verifyErr) {
		return false
	}
	return true
}

// retry runs op until it succeeds, fails for good, or has failed
// maxAttempts times in a row without progress, backing off between tries.
func (p *puller) retry(ctx context.Context, what string, op func(context.Context) (bool, error)) error {
	failures := 0
	for attempt := 1; ; attempt++ {
		progressed, err := op(ctx)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if progressed {
			failures = 0
		}
		failures++
		if !retryable(err) || failures >= maxAttempts || attempt >= maxTotalAttempts {
			return err
		}
		delay := min(firstBackoff<<(failures-1), maxBackoff)
		p.log.Warn(what+" failed; retrying", "err", err, "in", delay)
		if err := p.sleep(ctx, delay); err != nil {
			return err
		}
	}
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// writeManifestCache keeps the server's manifest beside the models so that
// `models list` can say whether installed files match it.
func writeManifestCache(dir string, data []byte) error {
	tmp, err := os.CreateTemp(dir, ".manifest-*.json")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), filepath.Join(dir, ManifestFile))
}

// readManifestCache returns the cached manifest of dir, or nil when there
// is none.
func readManifestCache(dir string) (*Manifest, error) {
	path := filepath.Join(dir, ManifestFile)
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read manifest cache: %w", err)
	}
	m, err := ParseManifest(data)
	if err != nil {
		return nil, fmt.Errorf("manifest cache %s is malformed: %w: delete it, or pull a model again to refresh it", path, err)
	}
	return m, nil
}
