package models

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/anonymize-dev/anonymize/internal/digest"
	"github.com/anonymize-dev/anonymize/internal/retry"
)

const (
	maxAttempts         = 4  // failures in a row without progress
	maxTotalAttempts    = 20 // all attempts of one download
	firstBackoff        = 500 * time.Millisecond
	maxBackoff          = 8 * time.Second
	defaultStallTimeout = 60 * time.Second // no byte for this long counts as a dropped connection
)

// downloader fetches one file over HTTP into a .part file, resuming what
// an earlier attempt left there and retrying a flaky link; both sources of
// models (an organisation's models server, the Hugging Face Hub) use it.
type downloader struct {
	client       *http.Client
	log          *slog.Logger
	progress     func(done, total int64) // nil: no progress
	stallTimeout time.Duration
	// Test hooks: one delay for every retry, and a call at each.
	retryDelay time.Duration
	onRetry    func()
}

func newDownloader(opts PullOptions) *downloader {
	d := &downloader{client: opts.Client, log: opts.Logger, progress: opts.Progress, stallTimeout: opts.stallTimeout,
		retryDelay: opts.retryDelay, onRetry: opts.onRetry}
	if d.log == nil {
		d.log = slog.New(slog.DiscardHandler)
	}
	if d.client == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.ResponseHeaderTimeout = 30 * time.Second
		// No overall timeout: a large model on a slow link takes as long as
		// it takes; stalls are caught by stallTimeout instead.
		d.client = &http.Client{Transport: t}
	}
	if d.stallTimeout == 0 {
		d.stallTimeout = defaultStallTimeout
	}
	return d
}

// target is one file to download and what it must turn out to be.
type target struct {
	name   string // model name, for logs and messages
	url    string
	sha256 string      // hex
	size   int64       // bytes; 0 when unknown
	header http.Header // extra request headers (a token)
}

// hashMismatchError is a download that completed with other bytes than
// expected; the .part is gone by the time it is returned.
type hashMismatchError struct {
	got, want string
	size      int64
}

func (e *hashMismatchError) Error() string {
	return fmt.Sprintf("the downloaded file (%d bytes) has sha256 %s, not the expected %s", e.size, e.got, e.want)
}

// download fetches t into part until it holds the whole file with t's
// sha256. A resumed download whose result does not match is started once
// more from zero, since the bytes kept from before may belong to an older
// version of the file. A file of the wrong size or hash is removed and
// reported as a *sizeMismatchError or *hashMismatchError; other failures
// come back as they are, for the caller to explain with its source in
// mind (downloadHint for a models server).
func (d *downloader) download(ctx context.Context, t target, part string) error {
	for fresh := false; ; fresh = true {
		if fresh {
			if err := os.Remove(part); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("remove %s: %w", part, err)
			}
		}
		resumed := false
		err := d.retry(ctx, "download "+t.name, func(ctx context.Context) (bool, error) {
			return d.fetchPart(ctx, t, part, &resumed)
		})
		if err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("pull %s interrupted (%w): run the same command again to resume", t.name, err)
			}
			var se *sizeMismatchError
			if errors.As(err, &se) {
				os.Remove(part)
			}
			return err
		}

		sum, size, err := digest.FileSHA256(part)
		if err != nil {
			return fmt.Errorf("check download: %w", err)
		}
		if sum == t.sha256 && (t.size == 0 || size == t.size) {
			return nil
		}
		if resumed && !fresh {
			d.log.Warn("resumed download does not match the expected sha256; starting again from zero",
				"model", t.name, "sha256", sum, "want", t.sha256)
			continue
		}
		os.Remove(part)
		return &hashMismatchError{got: sum, want: t.sha256, size: size}
	}
}

// fetchPart runs one request for the rest of part. It reports whether it
// wrote anything, so that retry can tell a flaky but progressing link from
// a dead one.
func (d *downloader) fetchPart(ctx context.Context, t target, part string, resumed *bool) (progressed bool, err error) {
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
		d.log.Info("starting the download again from zero", "model", t.name, "reason", why)
		if err := os.Remove(part); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return permanent(fmt.Errorf("remove %s: %w", part, err))
		}
		offset = 0
		return nil
	}
	if t.size > 0 && offset > t.size {
		if err := discard(fmt.Sprintf("%s holds %d bytes, more than the %d expected", part, offset, t.size)); err != nil {
			return false, err
		}
	}
	if t.size > 0 && offset == t.size {
		// Complete from an earlier run that stopped before the check.
		*resumed = true
		d.report(offset, offset)
		return false, nil
	}

	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stall := time.AfterFunc(d.stallTimeout, func() { cancel(errStalled) })
	defer stall.Stop()

	req, err := http.NewRequestWithContext(ctx, http.MethodGet, t.url, nil)
	if err != nil {
		return false, permanent(err)
	}
	for k, v := range t.header {
		req.Header[k] = v
	}
	req.Header.Set("User-Agent", "anonymize")
	// Byte offsets must count the file itself, not a compressed encoding.
	req.Header.Set("Accept-Encoding", "identity")
	if offset > 0 {
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-", offset))
		d.log.Info("resuming download", "model", t.name, "from", offset)
	} else {
		d.log.Info("downloading", "model", t.name, "url", t.url)
	}
	resp, err := d.client.Do(req)
	if err != nil {
		return false, stallCause(ctx, err)
	}
	defer resp.Body.Close()

	total := t.size
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
			if t.size > 0 && size != t.size {
				return false, permanent(&sizeMismatchError{server: size, want: t.size})
			}
			total = size
		}
		*resumed = true
	case resp.StatusCode == http.StatusRequestedRangeNotSatisfiable && offset > 0:
		_, _, size, ok := parseContentRange(resp.Header.Get("Content-Range"))
		if !ok || size < 0 || size == offset {
			// The .part already holds the whole file; the hash decides.
			*resumed = true
			d.report(offset, offset)
			return false, nil
		}
		if err := discard(fmt.Sprintf("server's file is %d bytes, %s holds %d", size, part, offset)); err != nil {
			return false, err
		}
		return false, errors.New("range not satisfiable")
	case resp.StatusCode == http.StatusOK:
		if offset > 0 {
			d.log.Info("starting the download again from zero", "model", t.name, "reason", "server ignored the range request")
			offset = 0
		}
		if resp.ContentLength >= 0 {
			if t.size > 0 && resp.ContentLength != t.size {
				return false, permanent(&sizeMismatchError{server: resp.ContentLength, want: t.size})
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
	d.report(done, total)
	buf := make([]byte, 256<<10)
	for {
		n, rerr := resp.Body.Read(buf)
		if n > 0 {
			stall.Reset(d.stallTimeout)
			if _, err := f.Write(buf[:n]); err != nil {
				return true, permanent(fmt.Errorf("write %s: %w", part, err))
			}
			done += int64(n)
			progressed = true
			d.report(done, total)
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

func (d *downloader) report(done, total int64) {
	if d.progress != nil {
		d.progress(done, total)
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

type sizeMismatchError struct{ server, want int64 }

func (e *sizeMismatchError) Error() string {
	return fmt.Sprintf("the server's file is %d bytes, not the expected %d", e.server, e.want)
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
	code       int
	status     string
	retryAfter time.Duration // the server's Retry-After, in seconds form
}

func (e *httpStatusError) Error() string { return "server answered " + e.status }

// RetryAfter is the server's Retry-After (retry.RetryAfterError).
func (e *httpStatusError) RetryAfter() time.Duration { return e.retryAfter }

func statusError(resp *http.Response) error {
	e := &httpStatusError{code: resp.StatusCode, status: resp.Status}
	if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
		e.retryAfter = time.Duration(s) * time.Second
	}
	return e
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

// retry runs op under the download policy: what retryable rejects is not
// tried again, and a server's Retry-After is honoured (capped at
// maxBackoff).
func (d *downloader) retry(ctx context.Context, what string, op retry.Op) error {
	p := retry.Policy{
		Initial: firstBackoff, Max: maxBackoff, Failures: maxAttempts, Tries: maxTotalAttempts,
		Notify: func(err error, delay time.Duration) {
			d.log.Warn(what+" failed; retrying", "err", err, "in", delay.Round(time.Millisecond))
			if d.onRetry != nil {
				d.onRetry()
			}
		},
	}
	if d.retryDelay > 0 {
		p.Initial, p.Max = d.retryDelay, d.retryDelay
	}
	return retry.Do(ctx, p, func(ctx context.Context) (bool, error) {
		progressed, err := op(ctx)
		if err != nil && !retryable(err) {
			err = retry.Permanent(err)
		}
		return progressed, err
	})
}
