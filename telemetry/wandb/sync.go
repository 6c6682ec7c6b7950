package wandb

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// Sync uploads saved runs, for `anonymize wandb sync DIR...`. Each DIR is
// a run folder, or a folder of them (<WANDB_DIR>/wandb, or WANDB_DIR
// itself), in which case every run not yet completed is uploaded. Uploads
// resume where an earlier sync or the online uploader stopped, so running
// it again after an interruption sends each line once. A run whose process
// died (run.json has no exit code) is completed as failed, with exit code
// 1. Settings give the API key, the server and the entity and project to
// use for runs that never reached the server; Mode is ignored. Sync goes
// on with the other runs when one fails and returns all the failures.
func Sync(ctx context.Context, dirs []string, settings Settings, log *slog.Logger) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if settings.APIKey == "" {
		return errors.New("WANDB_API_KEY is not set: uploading to W&B needs an API key")
	}
	if settings.BaseURL == "" {
		settings.BaseURL = DefaultBaseURL
	}
	if settings.Project == "" {
		settings.Project = DefaultProject
	}
	opts := settings.Upload.withDefaults()
	var errs []error
	for _, d := range dirs {
		runs, err := findRuns(d)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, rd := range runs {
			if err := ctx.Err(); err != nil {
				return errors.Join(append(errs, fmt.Errorf("sync %s: %w", rd, err))...)
			}
			if err := syncRun(ctx, rd, settings, opts, log); err != nil {
				errs = append(errs, fmt.Errorf("sync %s: %w", rd, err))
			}
		}
	}
	return errors.Join(errs...)
}

// findRuns lists the run folders dir stands for.
func findRuns(dir string) ([]string, error) {
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("sync %s: %w", dir, err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("sync %s: not a folder; give a W&B run folder or the wandb folder holding them", dir)
	}
	if isRunDir(dir) {
		return []string{dir}, nil
	}
	parent := dir
	if fi, err := os.Stat(filepath.Join(dir, "wandb")); err == nil && fi.IsDir() {
		parent = filepath.Join(dir, "wandb")
	}
	entries, err := os.ReadDir(parent)
	if err != nil {
		return nil, fmt.Errorf("sync %s: %w", dir, err)
	}
	var runs []string
	for _, e := range entries {
		p := filepath.Join(parent, e.Name())
		if e.IsDir() && isRunDir(p) {
			runs = append(runs, p)
		}
	}
	if len(runs) == 0 {
		return nil, fmt.Errorf("sync %s: no W&B runs there (a run folder holds %s)", dir, runFileName)
	}
	slices.Sort(runs) // names start with the date: oldest first
	return runs, nil
}

func isRunDir(dir string) bool {
	fi, err := os.Stat(filepath.Join(dir, runFileName))
	return err == nil && fi.Mode().IsRegular()
}

func syncRun(ctx context.Context, dir string, s Settings, opts UploadOptions, log *slog.Logger) error {
	info, err := readRunInfo(dir)
	if err != nil {
		return err
	}
	state, err := readSyncState(dir)
	if err != nil {
		return err
	}
	if state.Completed {
		log.Info("W&B run already uploaded, skipping", "dir", dir, "url", runURL(s.BaseURL, state.Entity, state.Project, info.ID))
		return nil
	}
	code := 1
	if info.ExitCode != nil {
		code = *info.ExitCode
	} else {
		log.Info("W&B run has no exit code: its process stopped before finishing; completing it as failed (exit code 1)", "dir", dir)
	}
	entity, project := info.Entity, info.Project
	if entity == "" {
		entity = s.Entity
	}
	if project == "" {
		project = s.Project
	}
	c := &client{base: s.BaseURL, apiKey: s.APIKey, opts: opts, attempts: opts.SyncAttempts, onRetry: func(err error, _ time.Duration) {
		log.Info("W&B request failed, retrying", "dir", dir, "err", err)
	}}
	u, err := newUploader(c, dir, info, state, entity, project)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("incomplete run folder: %w", err)
		}
		return err
	}
	if err := u.create(ctx); err != nil {
		return err
	}
	if err := u.finish(ctx, code); err != nil {
		return err
	}
	log.Info("W&B run uploaded", "dir", dir, "history_rows", u.state.HistoryLines, "events", u.state.EventsLines,
		"url", runURL(s.BaseURL, u.state.Entity, u.state.Project, info.ID))
	return nil
}
