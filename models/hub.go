package models

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/anonymize-dev/anonymize/internal/atomicfile"
)

// DefaultHubURL is the Hugging Face Hub; HF_ENDPOINT (as in Hugging Face's
// own tools) or --hub-url point pulls at a mirror of it instead.
const DefaultHubURL = "https://huggingface.co"

// Environment variables Hugging Face's tools read, honoured the same way.
const (
	EnvHubURL   = "HF_ENDPOINT"
	EnvHubToken = "HF_TOKEN"
)

// HubLockFile records, in a model folder, the Hub commit and sha256 of
// every model pulled from the Hub into it.
const HubLockFile = "hub-lock.json"

// HubFile is a model file on the Hugging Face Hub.
type HubFile struct {
	Repo string // "owner/name"
	Path string // inside the repository
	// Revision is the commit to pull, 40 hex digits. Empty means the
	// project has not pinned one yet: the first pull into a folder pins
	// the commit the repository's main branch then points at, records it
	// in HubLockFile, and later pulls keep to it.
	Revision string
	License  string
}

// URL is where the Hub serves the file at revision rev.
func (f HubFile) URL(hub, rev string) string {
	return strings.TrimSuffix(hub, "/") + "/" + f.Repo + "/resolve/" + url.PathEscape(rev) + "/" + f.Path
}

// HubOptions configures pulls from the Hub.
type HubOptions struct {
	URL   string // empty: DefaultHubURL
	Token string // sent to the Hub only, for gated or private repositories
	// Revision overrides the registry's pinned commit (40 hex digits).
	Revision string
}

// hubBranch is asked only to learn the commit it points at, for a model
// the project has not pinned yet; nothing is downloaded from a branch.
const hubBranch = "main"

var commitRE = regexp.MustCompile(`^[0-9a-f]{40}$`)

// IsCommit reports whether rev is a full commit hash, the only kind of
// revision a pull accepts: a branch or tag can move.
func IsCommit(rev string) bool { return commitRE.MatchString(rev) }

// hubPuller pulls a registry model from the Hub.
type hubPuller struct {
	PullOptions
	*downloader
	model Model
	hub   string
}

// pullHub installs a registry model from the Hugging Face Hub: the commit
// the registry pins (or --revision, or the one this folder recorded), with
// the sha256 and size the Hub publishes for the file, checked against the
// sha256 recorded at the first pull (a file changed under the same commit
// is refused) and against --sha256 when given.
func pullHub(ctx context.Context, opts PullOptions) (string, error) {
	m, err := Lookup(opts.Name)
	if err != nil {
		return "", err
	}
	if m.Hub == nil {
		return "", fmt.Errorf("%s has no public download (%s); pull it from your organisation's models server "+
			"(--models-url or %s, see models/README.md) or export it with %s", m.Name, m.Upstream, EnvModelsURL, m.Export)
	}
	if r := opts.Hub.Revision; r != "" && !IsCommit(r) {
		return "", fmt.Errorf("--revision %q is not a commit hash (40 hex digits, as the Hub lists under the file's history): "+
			"a branch or tag can move to other bytes", r)
	}
	hub := opts.Hub.URL
	if hub == "" {
		hub = DefaultHubURL
	}
	if u, err := url.Parse(hub); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("Hub URL %q is not an http:// or https:// URL: fix --hub-url or %s", hub, EnvHubURL)
	}
	p := &hubPuller{PullOptions: opts, downloader: newDownloader(opts), model: m, hub: strings.TrimSuffix(hub, "/")}
	return p.pull(ctx)
}

func (p *hubPuller) pull(ctx context.Context) (string, error) {
	f := *p.model.Hub
	lock, err := readHubLock(p.Dir)
	if err != nil {
		return "", err
	}
	pin, pinned := lock.find(p.model.Name)
	if pinned && (pin.Repo != f.Repo || pin.Path != f.Path) {
		pinned = false // the registry moved to another file; the old record says nothing about it
	}

	rev := p.Hub.Revision
	switch {
	case rev != "":
	case f.Revision != "":
		rev = f.Revision
	case pinned:
		rev = pin.Revision
	default:
		meta, err := p.head(ctx, f, hubBranch)
		if err != nil {
			return "", err
		}
		if !IsCommit(meta.commit) {
			return "", fmt.Errorf("the Hub at %s did not say which commit %s of %s is (no X-Repo-Commit header): "+
				"pass --revision with a commit hash from the repository's history", p.hub, hubBranch, f.Repo)
		}
		rev = meta.commit
		p.log.Warn("this version of anonymize pins no commit of the model's repository; pinning the one its main branch points at now, "+
			"for this model folder (see "+HubLockFile+")", "model", p.model.Name, "repo", f.Repo, "commit", rev)
	}
	src := f.URL(p.hub, rev)
	meta, err := p.head(ctx, f, rev)
	if err != nil {
		return "", err
	}

	want, err := p.expectedSHA256(meta, pin, pinned && pin.Revision == rev, src)
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(p.Dir, 0o755); err != nil {
		return "", fmt.Errorf("create model folder: %w", err)
	}
	final := filepath.Join(p.Dir, p.model.File)
	record := HubPin{Name: p.model.Name, Repo: f.Repo, Path: f.Path, Revision: rev, SHA256: want, Size: meta.size}
	done, err := alreadyInstalled(p.downloader, p.model.Name, final, want)
	if err != nil {
		return "", err
	}
	if done {
		return final, p.record(lock, record)
	}

	part := final + ".part"
	err = p.download(ctx, target{name: p.model.Name, url: src, sha256: want, size: meta.size, header: p.auth()}, part)
	var (
		se *sizeMismatchError
		he *hashMismatchError
	)
	switch {
	case errors.As(err, &se) || errors.As(err, &he):
		return "", fmt.Errorf("download %s from %s: %w: the file is not the one the Hub announced; it was not installed. "+
			"Run the same command again; if this repeats, the Hub or a proxy between is serving other bytes", p.model.Name, src, err)
	case err != nil && ctx.Err() != nil:
		return "", err
	case err != nil:
		return "", p.explain(err, src, want)
	}
	err = installPart(p.downloader, p.model.Name, part, final, func(err error) error {
		return fmt.Errorf("%s is not a model the program can run as its %s, so it was not installed: %w", src, p.model.Role, err)
	})
	if err != nil {
		return "", err
	}
	return final, p.record(lock, record)
}

// expectedSHA256 decides which sha256 the file must have: --sha256 when
// given, else the one recorded when this folder first pulled the same
// commit, else the Hub's. The Hub's must agree with the first two: a
// commit's files never change, so a different hash means the Hub, a
// mirror or a proxy is serving something else.
func (p *hubPuller) expectedSHA256(meta hubMeta, pin HubPin, samePin bool, src string) (string, error) {
	switch {
	case p.SHA256 != "":
		if meta.sha256 != "" && meta.sha256 != p.SHA256 {
			return "", fmt.Errorf("the Hub says %s has sha256 %s, not the %s given with --sha256; nothing was downloaded",
				src, meta.sha256, p.SHA256)
		}
		return p.SHA256, nil
	case samePin:
		if meta.sha256 != "" && meta.sha256 != pin.SHA256 {
			return "", fmt.Errorf("the Hub now says %s has sha256 %s, but this model folder recorded %s for the same commit at its first pull "+
				"(%s): the file changed under a commit that cannot change, so it is refused. If you trust the new file, pass --sha256 %s",
				src, meta.sha256, pin.SHA256, filepath.Join(p.Dir, HubLockFile), meta.sha256)
		}
		return pin.SHA256, nil
	case meta.sha256 != "":
		return meta.sha256, nil
	}
	return "", fmt.Errorf("the Hub did not publish a sha256 for %s (no X-Linked-Etag header), so the download could not be checked; "+
		"pass --sha256 with the hash shown on the file's page", src)
}

func (p *hubPuller) auth() http.Header {
	if p.Hub.Token == "" {
		return nil
	}
	return http.Header{"Authorization": {"Bearer " + p.Hub.Token}}
}

// hubMeta is what the Hub says about a file in its answer to a HEAD
// request on the file's resolve URL.
type hubMeta struct {
	commit string // X-Repo-Commit
	sha256 string // of the file, from X-Linked-Etag: files stored in LFS
	size   int64  // X-Linked-Size; 0 when not given
}

// head asks the Hub about f at rev without downloading it. The Hub
// answers a resolve URL of an LFS file with a redirect to its storage
// host, carrying the commit, the file's sha256 and its size in headers;
// those headers are what is read, so the redirect is not followed, unless
// it leads to another resolve URL on the same host (a renamed repository).
func (p *hubPuller) head(ctx context.Context, f HubFile, rev string) (hubMeta, error) {
	src := f.URL(p.hub, rev)
	var meta hubMeta
	client := *p.client
	client.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if req.URL.Host != via[0].URL.Host || !strings.Contains(req.URL.Path, "/resolve/") || len(via) > 5 {
			return http.ErrUseLastResponse
		}
		return nil
	}
	err := p.retry(ctx, "ask the Hub about "+p.model.Name, func(ctx context.Context) (bool, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodHead, src, nil)
		if err != nil {
			return false, permanent(err)
		}
		for k, v := range p.auth() {
			req.Header[k] = v
		}
		req.Header.Set("User-Agent", "anonymize")
		req.Header.Set("Accept-Encoding", "identity")
		resp, err := client.Do(req)
		if err != nil {
			return false, err
		}
		resp.Body.Close()
		if resp.StatusCode >= 400 || (resp.StatusCode >= 300 && resp.Header.Get("Location") == "") {
			return false, statusError(resp)
		}
		meta = hubMeta{commit: resp.Header.Get("X-Repo-Commit")}
		etag, size := resp.Header.Get("X-Linked-Etag"), resp.Header.Get("X-Linked-Size")
		if etag == "" && resp.StatusCode == http.StatusOK {
			// A mirror serving the file itself: its ETag may be the hash.
			etag, size = resp.Header.Get("ETag"), resp.Header.Get("Content-Length")
		}
		if sum := strings.ToLower(strings.Trim(strings.TrimPrefix(etag, "W/"), `"`)); isSHA256(sum) {
			meta.sha256 = sum
		}
		if n, err := strconv.ParseInt(size, 10, 64); err == nil && n > 0 {
			meta.size = n
		}
		return false, nil
	})
	if err != nil {
		if ctx.Err() != nil {
			return meta, fmt.Errorf("pull %s interrupted: %w", p.model.Name, err)
		}
		return meta, p.explain(err, src, "")
	}
	return meta, nil
}

// explain turns a failed request to the Hub into what the user can do,
// with the exact URL to fetch by hand where the Hub cannot be reached.
func (p *hubPuller) explain(err error, src, sha string) error {
	var se *httpStatusError
	if errors.As(err, &se) {
		switch {
		case se.code == http.StatusNotFound:
			return fmt.Errorf("%s: %w: the repository, the commit or the file is not there; check --revision, or %s if it points at a mirror",
				src, err, EnvHubURL)
		case se.code == http.StatusUnauthorized || se.code == http.StatusForbidden:
			return fmt.Errorf("%s: %w: the Hub refused access; for a gated or private repository set %s to a token that may read it",
				src, err, EnvHubToken)
		case se.code == http.StatusProxyAuthRequired:
			return fmt.Errorf("%s: %w: the proxy wants credentials; put them in HTTPS_PROXY (http://user:password@host:port)", src, err)
		case se.code >= 500 || se.code == http.StatusTooManyRequests:
			return fmt.Errorf("%s: %w: the Hub is failing or busy; try again later (the download resumes where it stopped)", src, err)
		}
		return fmt.Errorf("%s: %w", src, err)
	}
	var pe *permanentError
	if errors.As(err, &pe) {
		return fmt.Errorf("download %s: %w: free space or fix permissions in the model folder, then run the same command again", src, err)
	}
	check := "--sha256 SHA256"
	if sha != "" {
		check = "--sha256 " + sha
	}
	branch := ""
	if strings.Contains(src, "/resolve/"+hubBranch+"/") {
		branch = fmt.Sprintf(" (this version of anonymize pins no commit, so that URL follows the %s branch: "+
			"prefer the same file at a commit from its history, and note the commit and the sha256 the Hub shows for it)", hubBranch)
	}
	return fmt.Errorf("could not reach the Hugging Face Hub: %w. Behind a proxy, set HTTPS_PROXY; to use a mirror of the Hub, set %s; "+
		"to use your organisation's models server, set %s. On a host without internet access, fetch %s elsewhere%s, "+
		"copy it here and run `anonymize models pull %s --file FILE %s`",
		err, EnvHubURL, EnvModelsURL, src, branch, p.model.Name, check)
}

func (p *hubPuller) record(lock *HubLock, pin HubPin) error {
	pin.Pulled = time.Now().UTC().Truncate(time.Second)
	if old, ok := lock.find(pin.Name); ok && old.Repo == pin.Repo && old.Path == pin.Path &&
		old.Revision == pin.Revision && old.SHA256 == pin.SHA256 {
		return nil
	}
	lock.set(pin)
	if err := lock.write(p.Dir); err != nil {
		return fmt.Errorf("installed %s, but could not record its commit and sha256: %w", pin.Name, err)
	}
	p.log.Info("recorded", "model", pin.Name, "commit", pin.Revision, "sha256", pin.SHA256, "in", filepath.Join(p.Dir, HubLockFile))
	return nil
}

// HubLock is the record of a model folder's pulls from the Hub.
type HubLock struct {
	Models []HubPin `json:"models"`
}

// HubPin is the commit and sha256 a model was pulled at.
type HubPin struct {
	Name     string    `json:"name"`
	Repo     string    `json:"repo"`
	Path     string    `json:"path"`
	Revision string    `json:"revision"`
	SHA256   string    `json:"sha256"`
	Size     int64     `json:"size,omitempty"`
	Pulled   time.Time `json:"pulled"`
}

func (l *HubLock) find(name string) (HubPin, bool) {
	for _, p := range l.Models {
		if p.Name == name {
			return p, true
		}
	}
	return HubPin{}, false
}

func (l *HubLock) set(pin HubPin) {
	for i, p := range l.Models {
		if p.Name == pin.Name {
			l.Models[i] = pin
			return
		}
	}
	l.Models = append(l.Models, pin)
}

func (l *HubLock) write(dir string) error {
	data, err := json.MarshalIndent(l, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(filepath.Join(dir, HubLockFile), append(data, '\n'), 0o644)
}

// readHubLock reads dir's record; a folder without one has an empty one.
func readHubLock(dir string) (*HubLock, error) {
	path := filepath.Join(dir, HubLockFile)
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return &HubLock{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	var l HubLock
	if err := json.Unmarshal(data, &l); err != nil {
		return nil, fmt.Errorf("%s is malformed: %w: fix or delete it (deleting it forgets which commit and sha256 each model was pulled at)", path, err)
	}
	for _, p := range l.Models {
		if !IsCommit(p.Revision) || !isSHA256(p.SHA256) {
			return nil, fmt.Errorf("%s: model %q has revision %q and sha256 %q; fix or delete the entry", path, p.Name, p.Revision, p.SHA256)
		}
	}
	return &l, nil
}
