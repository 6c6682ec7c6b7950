package models

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// PullOptions configures Pull.
type PullOptions struct {
	Client *http.Client // nil: a client with a response-header timeout
	// ManifestURL is an organisation's models server (its manifest.json
	// URL, or its base URL). Empty: the model's public source, the Hugging
	// Face Hub, for the registry models that have one.
	ManifestURL string
	Name        string // manifest (and usually registry) model name
	Dir         string // model folder; created when missing
	// SHA256 pins the file: whatever the source says, only a file with
	// this sha256 is installed.
	SHA256 string
	// File installs a model file fetched by hand (on a host that cannot
	// reach the source) instead of downloading it, with the same checks.
	File string
	Hub  HubOptions
	// Progress, when set, is called as bytes arrive; done counts bytes
	// already on disk from an earlier attempt, total is -1 when unknown.
	Progress func(done, total int64)
	Logger   *slog.Logger // nil: discard

	// Test hooks; zero values pick the defaults.
	stallTimeout time.Duration
	retryDelay   time.Duration
	onRetry      func()
}

const maxManifestSize = 4 << 20

// Pull installs model opts.Name into opts.Dir and returns its path: from
// the organisation's models server when opts.ManifestURL is set, else from
// the model's public source (pullHub). It downloads to <file>.part,
// resuming what an earlier interrupted pull left there, checks the whole
// file's sha256 and the tensors it declares against the model's contract,
// and only then renames it into place, so a model file in the folder is
// always complete and runnable. A file already installed with the right
// sha256 is not downloaded again.
func Pull(ctx context.Context, opts PullOptions) (string, error) {
	if opts.Name == "" {
		return "", fmt.Errorf("no model named: pass one of %s", strings.Join(Names(), ", "))
	}
	if opts.Dir == "" {
		return "", errors.New("no model folder given")
	}
	if opts.SHA256 != "" {
		opts.SHA256 = strings.ToLower(opts.SHA256)
		if !isSHA256(opts.SHA256) {
			return "", fmt.Errorf("--sha256 %q is not 64 hex digits", opts.SHA256)
		}
	}
	switch {
	case opts.File != "":
		return installLocal(opts)
	case opts.ManifestURL != "":
		if opts.Hub.Revision != "" {
			return "", errors.New("--revision names a Hugging Face Hub commit, but a models server is configured (--models-url or " +
				EnvModelsURL + "), whose manifest decides the file")
		}
		p, err := newPuller(opts)
		if err != nil {
			return "", err
		}
		return p.pull(ctx)
	}
	return pullHub(ctx, opts)
}

func isSHA256(s string) bool {
	b, err := hex.DecodeString(s)
	return err == nil && len(b) == sha256.Size
}

// puller pulls from an organisation's models server.
type puller struct {
	PullOptions
	*downloader
	manifestURL string
}

func newPuller(opts PullOptions) (*puller, error) {
	mu, err := manifestURL(opts.ManifestURL)
	if err != nil {
		return nil, err
	}
	return &puller{PullOptions: opts, downloader: newDownloader(opts), manifestURL: mu}, nil
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

	if p.SHA256 != "" && p.SHA256 != entry.SHA256 {
		return "", fmt.Errorf("the models server's manifest %s lists sha256 %s for %s, not the %s given with --sha256; nothing was downloaded",
			p.manifestURL, entry.SHA256, entry.Name, p.SHA256)
	}

	final := filepath.Join(p.Dir, file)
	done, err := alreadyInstalled(p.downloader, entry.Name, final, entry.SHA256)
	if done || err != nil {
		return final, err
	}
	part := final + ".part"
	err = p.download(ctx, target{name: entry.Name, url: src, sha256: entry.SHA256, size: entry.Size}, part)
	var (
		se *sizeMismatchError
		he *hashMismatchError
	)
	switch {
	case errors.As(err, &se):
		return "", fmt.Errorf("download %s from %s: %w: the server's file does not match the manifest; tell whoever runs the models server",
			entry.Name, src, err)
	case errors.As(err, &he):
		return "", fmt.Errorf("downloaded %s (%d bytes) has sha256 %s but the manifest says %s: "+
			"the server's file does not match the manifest; tell whoever runs the models server to regenerate it with models/export/manifest.py",
			entry.Name, he.size, he.got, he.want)
	case err != nil && ctx.Err() != nil:
		return "", err
	case err != nil:
		return "", fmt.Errorf("download %s from %s: %w: %s", entry.Name, src, err, downloadHint(err))
	}
	err = installPart(p.downloader, entry.Name, part, final, func(err error) error {
		return fmt.Errorf("the models server's %s is not a model the program can run as its %s, so it was not installed "+
			"(tell whoever runs the server at %s): %w", entry.Name, roleOf(entry.Name), p.manifestURL, err)
	})
	return final, err
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
		resp, err := p.client.Do(req)
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
