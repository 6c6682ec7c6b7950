package wandb

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/anonymize-dev/anonymize/internal/atomicfile"
)

// Names inside a run folder. The files/ names are the ones W&B's file
// stream expects, so the folder uploads as it is.
const (
	runFileName     = "run.json"
	syncFileName    = "sync.json"
	filesDirName    = "files"
	historyFileName = "wandb-history.jsonl"
	eventsFileName  = "wandb-events.jsonl"
	summaryFileName = "wandb-summary.json"
)

// runInfo is run.json: everything needed to create the run remotely later.
type runInfo struct {
	ID          string         `json:"id"`
	DisplayName string         `json:"display_name,omitempty"`
	Entity      string         `json:"entity,omitempty"`
	Project     string         `json:"project"`
	Mode        Mode           `json:"mode"`
	Config      map[string]any `json:"config,omitempty"`
	Host        string         `json:"host,omitempty"`
	Program     string         `json:"program,omitempty"`
	JobType     string         `json:"job_type,omitempty"`
	StartTime   time.Time      `json:"start_time"`
	// EndTime and ExitCode are set by Run.Finish; a run.json without them
	// belongs to a process that died.
	EndTime  *time.Time `json:"end_time,omitempty"`
	ExitCode *int       `json:"exit_code,omitempty"`
}

// syncState is sync.json: how far the upload got, so that a later sync
// resumes at the same line offsets and the server never sees a line twice.
type syncState struct {
	// Entity and Project are the names the server answered with.
	Entity       string `json:"entity,omitempty"`
	Project      string `json:"project,omitempty"`
	HistoryLines int    `json:"history_lines"`
	EventsLines  int    `json:"events_lines"`
	// SummarySHA256 is the hash of the wandb-summary.json content the
	// server last acknowledged; the summary is up to date when it matches
	// the file's.
	SummarySHA256 string     `json:"summary_sha256,omitempty"`
	Completed     bool       `json:"completed"`
	ExitCode      *int       `json:"exit_code,omitempty"`
	UpdatedAt     time.Time  `json:"updated_at"`
	LastError     string     `json:"last_error,omitempty"`
	CompletedAt   *time.Time `json:"completed_at,omitempty"`
}

func readJSONFile(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("parse %s: %w", path, err)
	}
	return nil
}

func readRunInfo(dir string) (runInfo, error) {
	var ri runInfo
	err := readJSONFile(filepath.Join(dir, runFileName), &ri)
	if err == nil && ri.ID == "" {
		err = fmt.Errorf("%s has no run id", filepath.Join(dir, runFileName))
	}
	return ri, err
}

// readSyncState returns the zero state when nothing was uploaded yet.
func readSyncState(dir string) (syncState, error) {
	var st syncState
	err := readJSONFile(filepath.Join(dir, syncFileName), &st)
	if errors.Is(err, fs.ErrNotExist) {
		return syncState{}, nil
	}
	return st, err
}

// writeJSONFile replaces path atomically, so a reader (the uploader, a
// sync after a crash) sees the old or the new content, never half.
func writeJSONFile(path string, v any, indent bool) error {
	var b []byte
	var err error
	if indent {
		b, err = json.MarshalIndent(v, "", "  ")
		b = append(b, '\n')
	} else {
		b, err = json.Marshal(v)
	}
	if err != nil {
		return fmt.Errorf("encode %s: %w", filepath.Base(path), err)
	}
	return atomicfile.WriteFile(path, b, 0o644)
}

// runFolderName follows W&B's layout: the prefix says whether the run was
// meant to upload live.
func runFolderName(mode Mode, start time.Time, id string) string {
	prefix := "run-"
	if mode == ModeOffline {
		prefix = "offline-run-"
	}
	return prefix + start.Format("20060102_150405") + "-" + id
}

// record is one queued line for the writer: a history row (without _step,
// which the writer assigns in commit order) or a system event.
type record struct {
	history map[string]any
	event   map[string]any
}

// summaryState holds what the summary gets besides history values; callers
// other than the writer change it, hence the lock.
type summaryState struct {
	mu      sync.Mutex
	video   map[string]any
	extra   map[string]any
	changed bool
}

// merge copies kv into dst, which is s.video or s.extra.
func (s *summaryState) merge(dst, kv map[string]any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	maps.Copy(dst, kv)
	s.changed = true
}

// localWriter owns the run folder's data files. Only its goroutine writes
// them, so the exporters never wait on the disk.
type localWriter struct {
	dir      string
	start    time.Time
	q        chan record
	summary  *summaryState
	interval time.Duration
	log      *slog.Logger

	// wake, when not nil, tells the uploader a full batch is waiting.
	wake      chan struct{}
	wakeLines int

	history, events   *os.File
	historyW, eventsW *bufio.Writer
	historyN, eventsN int
	unsignaled        int
	last              map[string]any // the last value of every history key
	lastDirty         bool

	errOnce sync.Once
	err     error // the first write error; later lines are counted lost
	lost    int
	done    chan struct{}
}

func newLocalWriter(dir string, start time.Time, queue int, summary *summaryState, interval time.Duration, log *slog.Logger) (*localWriter, error) {
	files := filepath.Join(dir, filesDirName)
	if err := os.MkdirAll(files, 0o755); err != nil {
		return nil, fmt.Errorf("create W&B run folder: %w", err)
	}
	w := &localWriter{
		dir: dir, start: start, q: make(chan record, queue), summary: summary,
		interval: interval, log: log, last: map[string]any{}, done: make(chan struct{}),
	}
	var err error
	if w.history, err = os.OpenFile(filepath.Join(files, historyFileName), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644); err != nil {
		return nil, fmt.Errorf("create W&B history file: %w", err)
	}
	if w.events, err = os.OpenFile(filepath.Join(files, eventsFileName), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644); err != nil {
		w.history.Close()
		return nil, fmt.Errorf("create W&B events file: %w", err)
	}
	w.historyW, w.eventsW = bufio.NewWriter(w.history), bufio.NewWriter(w.events)
	// An empty summary from the start: sync and the uploader can rely on
	// the file being there.
	if err := w.writeSummary(false, time.Time{}); err != nil {
		w.history.Close()
		w.events.Close()
		return nil, err
	}
	return w, nil
}

func (w *localWriter) fail(err error) {
	w.errOnce.Do(func() {
		w.err = err
		// Reported again, as Result.LocalErr, when the run finishes.
		w.log.Info("W&B: cannot write the local run, its data is incomplete from here on", "dir", w.dir, "err", err)
	})
}

// loop runs until the queue is closed, then writes the final summary
// (with end as its runtime) and closes the files.
func (w *localWriter) loop(end func() time.Time) {
	defer close(w.done)
	tick := time.NewTicker(w.interval)
	defer tick.Stop()
	for {
		select {
		case rec, ok := <-w.q:
			open := ok
			if open {
				w.write(rec)
			}
			// Take whatever else is queued before flushing once.
		drain:
			for open {
				select {
				case rec, ok := <-w.q:
					if !ok {
						open = false
						break drain
					}
					w.write(rec)
				default:
					break drain
				}
			}
			w.flush()
			if !open {
				if err := w.writeSummary(true, end()); err != nil {
					w.fail(err)
				}
				w.closeFiles()
				return
			}
		case <-tick.C:
			if w.summaryDirty() {
				if err := w.writeSummary(false, time.Time{}); err != nil {
					w.fail(err)
				}
			}
		}
	}
}

func (w *localWriter) write(rec record) {
	if w.err != nil {
		w.lost++
		return
	}
	switch {
	case rec.history != nil:
		rec.history["_step"] = w.historyN
		if !w.writeLine(w.historyW, historyFileName, "history row", rec.history) {
			return
		}
		w.historyN++
		for k, v := range rec.history {
			w.last[k] = v
		}
		w.lastDirty = true
	case rec.event != nil:
		if !w.writeLine(w.eventsW, eventsFileName, "system event", rec.event) {
			return
		}
		w.eventsN++
	}
}

// writeLine appends v to a JSON-lines file, and reports whether it did;
// a failure stops the writer.
func (w *localWriter) writeLine(bw *bufio.Writer, file, what string, v any) bool {
	b, err := json.Marshal(v)
	if err != nil {
		w.fail(fmt.Errorf("encode %s: %w", what, err))
		return false
	}
	if _, err := bw.Write(append(b, '\n')); err != nil {
		w.fail(fmt.Errorf("write %s: %w", file, err))
		return false
	}
	w.unsignaled++
	return true
}

// flush makes every whole line visible to the uploader, which only reads
// up to the last newline.
func (w *localWriter) flush() {
	if err := w.historyW.Flush(); err != nil {
		w.fail(fmt.Errorf("write %s: %w", historyFileName, err))
	}
	if err := w.eventsW.Flush(); err != nil {
		w.fail(fmt.Errorf("write %s: %w", eventsFileName, err))
	}
	if w.wake != nil && w.unsignaled >= w.wakeLines {
		w.unsignaled = 0
		select {
		case w.wake <- struct{}{}:
		default:
		}
	}
}

func (w *localWriter) closeFiles() {
	for _, f := range []*os.File{w.history, w.events} {
		if err := f.Close(); err != nil {
			w.fail(fmt.Errorf("close %s: %w", f.Name(), err))
		}
	}
}

func (w *localWriter) summaryDirty() bool {
	w.summary.mu.Lock()
	defer w.summary.mu.Unlock()
	return w.lastDirty || w.summary.changed
}

// writeSummary rewrites wandb-summary.json whole, as W&B does: the last
// value of every history key, then the run's video attributes, then what
// SetSummary added, later ones winning.
func (w *localWriter) writeSummary(final bool, end time.Time) error {
	s := maps.Clone(w.last)
	if final && !end.IsZero() {
		s["_runtime"] = end.Sub(w.start).Seconds()
	}
	w.summary.mu.Lock()
	maps.Copy(s, w.summary.video)
	maps.Copy(s, w.summary.extra)
	w.summary.changed = false
	w.summary.mu.Unlock()
	w.lastDirty = false
	return writeJSONFile(filepath.Join(w.dir, filesDirName, summaryFileName), s, false)
}
