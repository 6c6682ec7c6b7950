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
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"
)

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
