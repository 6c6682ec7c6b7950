package batch

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/anonymize-dev/anonymize/internal/atomicfile"
)

// StateEntry is one line of a state file: a file that was finished, with
// what a later run needs to tell whether it is still done.
type StateEntry struct {
	Input        string    `json:"input"` // relative to IN_DIR, slash-separated
	InputSize    int64     `json:"input_size"`
	InputMtime   time.Time `json:"input_mtime"`
	Output       string    `json:"output"` // relative to OUT_DIR, slash-separated
	OutputSize   int64     `json:"output_size"`
	OutputSHA256 string    `json:"output_sha256"`
	SettingsHash string    `json:"settings_hash"`
	Finished     time.Time `json:"finished"`
}

// stateFileName is the state file a shard appends to.
func stateFileName(s ShardSpec) string {
	if suf := s.suffix(); suf != "" {
		return "state." + suf + ".jsonl"
	}
	return "state.jsonl"
}

// parseState decodes the complete lines of a state file. A last line
// without its newline is a write torn by a kill and is ignored; complete
// is the length of the part that ends in a newline. Undecodable complete
// lines (which an intact file never has) are counted in bad and skipped:
// their files are simply redone.
func parseState(data []byte) (entries []StateEntry, complete int, bad int) {
	complete = bytes.LastIndexByte(data, '\n') + 1
	for line := range bytes.SplitSeq(data[:complete], []byte("\n")) {
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		var e StateEntry
		if err := json.Unmarshal(line, &e); err != nil || e.Input == "" {
			bad++
			continue
		}
		entries = append(entries, e)
	}
	return entries, complete, bad
}

// loadStates reads every shard's state file in dir and returns the latest
// entry of each input. Reading the other shards' files too means that
// changing the number of shards does not redo finished files; their last
// line may be mid-write, which parseState ignores.
func loadStates(dir string, log *slog.Logger) (map[string]StateEntry, error) {
	names, err := filepath.Glob(filepath.Join(dir, "state*.jsonl"))
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	latest := map[string]StateEntry{}
	for _, name := range names {
		data, err := os.ReadFile(name)
		if err != nil {
			return nil, fmt.Errorf("read batch state %s: %w", name, err)
		}
		entries, _, bad := parseState(data)
		if bad > 0 {
			log.Warn("ignoring unreadable lines of the batch state; their files will be redone", "file", name, "lines", bad)
		}
		for _, e := range entries {
			if old, ok := latest[e.Input]; !ok || !e.Finished.Before(old.Finished) {
				latest[e.Input] = e
			}
		}
	}
	return latest, nil
}

// stateWriter appends entries to one state file, each made durable before
// Append returns.
type stateWriter struct {
	f    *os.File
	size int64 // length of the intact part
}

// openState opens (creating it if needed) the state file at path for
// appending, first cutting off a torn last line so that the next entry
// starts on a line of its own.
func openState(path string) (*stateWriter, error) {
	_, statErr := os.Stat(path)
	created := errors.Is(statErr, fs.ErrNotExist)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open batch state: %w", err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("read batch state: %w", err)
	}
	_, complete, _ := parseState(data)
	w := &stateWriter{f: f, size: int64(complete)}
	if complete != len(data) {
		if err := w.truncate(); err != nil {
			f.Close()
			return nil, err
		}
	}
	if created {
		if err := atomicfile.SyncDir(filepath.Dir(path)); err != nil {
			f.Close()
			return nil, err
		}
	}
	return w, nil
}

func (w *stateWriter) truncate() error {
	if err := w.f.Truncate(w.size); err != nil {
		return fmt.Errorf("repair batch state %s: %w", w.f.Name(), err)
	}
	return w.f.Sync()
}

// Append writes e as one line and fsyncs the file.
func (w *stateWriter) Append(e StateEntry) error {
	b, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("encode batch state: %w", err)
	}
	b = append(b, '\n')
	n, err := w.f.WriteAt(b, w.size)
	if err == nil {
		err = w.f.Sync()
	}
	if err != nil {
		if n > 0 {
			// Leave no torn line behind for the next append to run into.
			w.truncate()
		}
		return fmt.Errorf("record %s in the batch state %s: %w (is the disk full?)", e.Input, w.f.Name(), err)
	}
	w.size += int64(n)
	return nil
}

func (w *stateWriter) Close() error { return w.f.Close() }
