package batch

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/anonymize-dev/anonymize/internal/atomicfile"
	"github.com/anonymize-dev/anonymize/internal/digest"
	"github.com/anonymize-dev/anonymize/pipeline"
	"github.com/anonymize-dev/anonymize/video"
)

// Processor anonymizes one video; *pipeline.Engine is one. ProcessVideo
// must be safe for concurrent use, write its partial output in
// job.TempDir when set, and rename it onto job.Output only on success.
type Processor interface {
	ProcessVideo(ctx context.Context, job pipeline.Job, hooks pipeline.Hooks) (pipeline.Result, error)
}

// Describer is implemented by a Processor that can say what it runs on,
// for the settings hash and the report, as *pipeline.Engine does.
type Describer interface {
	Placement() pipeline.Placement
}

var (
	_ Processor = (*pipeline.Engine)(nil)
	_ Describer = (*pipeline.Engine)(nil)
)

func describe(p Processor) (pipeline.Placement, error) {
	if d, ok := p.(Describer); ok {
		return d.Placement(), nil
	}
	return pipeline.Placement{}, fmt.Errorf("batch: cannot tell which models a %T uses; it must implement batch.Describer", p)
}

// Options configures Run.
type Options struct {
	// AuditFail fails a file whose output the leak audit found a face in
	// (--audit-fail): its output is removed from the tree, so that the
	// tree only holds videos the audit passed, and a re-run redoes it.
	AuditFail bool

	InDir, OutDir    string
	Include, Exclude []string // see DiscoverOptions
	Shard            ShardSpec
	Jobs             int  // videos processed at once; below 1 means 1
	Force            bool // redo files an earlier run finished
	DryRun           bool // plan only: process and write nothing
	FailFast         bool // stop at the first failed file
	// Config is the pipeline configuration the Processor was built with;
	// the settings that change outputs go into the settings hash.
	Config pipeline.Config
	// Settings are the command's flag values, recorded in the report.
	Settings    map[string]string
	ToolVersion string
	Log         *slog.Logger // nil discards
}

// Hooks follow a run, for a progress display. Run never calls them
// concurrently, even with several jobs.
type Hooks struct {
	// Planned is called once before any file starts (not in a dry run),
	// with every file of the shard and its status (pending or skipped)
	// and reason.
	Planned func(files []FileReport)
	// FileStarted is called when a file's input is open, with the number
	// of frames that will be processed (0 when unknown). A file that
	// fails before (not a video, unreadable) goes to FileFinished only.
	FileStarted func(it Item, frames int)
	// Frame is called after each frame of a file is written.
	Frame func(it Item, fr pipeline.FrameResult)
	// FileFinished is called for each file processed, done or failed;
	// files cut short by cancellation come back pending.
	FileFinished func(f FileReport)
}

// Summary is the outcome of Run.
type Summary struct {
	// Files lists every file of the shard in order, with its status; in
	// a dry run, the plan: pending (to do) or skipped, with the reason.
	Files  []FileReport
	Totals Totals
	// Done, Skipped, Failed and Pending repeat Totals.Files (Pending
	// counting running files too): a command exits with status 3 when
	// Failed > 0.
	Done, Skipped, Failed, Pending int
	ReportPath                     string // "" in a dry run
	RunStatus                      RunStatus
	DryRun                         bool
}

var (
	errLocked  = errors.New("another run is using this output folder")
	errStopped = errors.New("stopped after a failure (fail-fast)")
)

// Run anonymizes the files of opts' shard that are not already done.
// A file's failure is recorded and the batch goes on (unless FailFast);
// the error is for what stops the batch as a whole: bad options (ErrUsage),
// unreadable input tree, state or report not writable, or cancellation of
// ctx (wrapping context.Canceled; the state lets a re-run resume).
func Run(ctx context.Context, opts Options, p Processor, hooks Hooks) (Summary, error) {
	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := opts.Shard.Validate(); err != nil {
		return Summary{}, err
	}
	rt, err := describe(p)
	if err != nil {
		return Summary{}, err
	}
	items, err := Discover(DiscoverOptions{InDir: opts.InDir, OutDir: opts.OutDir, Include: opts.Include, Exclude: opts.Exclude})
	if err != nil {
		return Summary{}, err
	}
	items = Shard(items, opts.Shard.Index, opts.Shard.Count)

	r := &runner{
		opts: opts, p: p, log: log, hooks: hooks, items: items,
		stateDir:     filepath.Join(opts.OutDir, stateDirName),
		settingsHash: SettingsHash(opts.Config, rt.Models),
	}
	r.tmpDir = filepath.Join(r.stateDir, "tmp"+opts.Shard.dash())
	r.reportPath = filepath.Join(opts.OutDir, reportFileName(opts.Shard))
	r.initReport(rt)

	if !opts.DryRun {
		unlock, err := r.prepare()
		if err != nil {
			return Summary{}, err
		}
		defer unlock()
		defer r.state.Close()
	}
	if err := r.plan(); err != nil {
		return Summary{}, err
	}
	if opts.DryRun {
		r.report.RunStatus = RunFinished
		return r.summary(), nil
	}
	r.mu.Lock()
	err = r.writeReportLocked()
	r.mu.Unlock()
	if err != nil {
		return Summary{}, err
	}
	r.callHook(func() {
		if hooks.Planned != nil {
			hooks.Planned(append([]FileReport(nil), r.report.Files...))
		}
	})

	runErr := r.process(ctx)

	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case r.fatal != nil:
		r.report.RunStatus = RunError
	case ctx.Err() != nil:
		r.report.RunStatus = RunInterrupted
	case r.stopped:
		r.report.RunStatus = RunStopped
	default:
		r.report.RunStatus = RunFinished
	}
	if err := r.writeReportLocked(); err != nil && runErr == nil {
		runErr = err
	}
	sum := r.summary()
	if runErr == nil && ctx.Err() != nil {
		runErr = fmt.Errorf("batch interrupted with %d files left; run the same command again to resume: %w",
			sum.Pending, context.Cause(ctx))
	}
	return sum, runErr
}

type runner struct {
	opts         Options
	p            Processor
	log          *slog.Logger
	hooks        Hooks
	items        []Item
	stateDir     string
	tmpDir       string
	reportPath   string
	settingsHash string

	state *stateWriter

	hookMu sync.Mutex // serializes hooks

	mu      sync.Mutex // guards what follows
	report  Report
	enc     reportEncoder // report.Files[i] changes go through setFileLocked
	fatal   error
	stopped bool
}

func (r *runner) initReport(rt pipeline.Placement) {
	now := time.Now().UTC()
	settings := map[string]string{}
	for k, v := range r.opts.Settings {
		settings[k] = v
	}
	shard := r.opts.Shard
	if shard.Count < 1 {
		shard.Count = 1
	}
	r.report = Report{
		SchemaVersion: ReportSchemaVersion, ToolVersion: r.opts.ToolVersion, RunStatus: RunRunning,
		Started: now, Updated: now, InDir: r.opts.InDir, OutDir: r.opts.OutDir, Shard: &shard,
		Settings: settings, SettingsHash: r.settingsHash,
		Device: rt.Device, ExecutionProvider: rt.Providers, Models: []ModelInfo{},
		Files: make([]FileReport, len(r.items)),
	}
	for _, m := range rt.Models {
		r.report.Models = append(r.report.Models, ModelInfo{Role: string(m.Role), Path: m.Path, SHA256: m.SHA256,
			Provider: m.Provider, Synthetic: m.Synthetic})
	}
}

// prepare creates the batch's folders, takes the shard's lock, deletes
// what a killed run left in the tmp folder and opens the state file.
func (r *runner) prepare() (unlock func() error, err error) {
	if err := os.MkdirAll(r.tmpDir, 0o755); err != nil {
		return nil, fmt.Errorf("create output folder: %w", err)
	}
	unlock, err = lockFile(filepath.Join(r.stateDir, "lock"+r.opts.Shard.dash()))
	if errors.Is(err, errLocked) {
		return nil, fmt.Errorf("%s (shard %s): %w; wait for it to finish or stop it", r.opts.OutDir, r.opts.Shard, err)
	}
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			unlock()
		}
	}()
	// Only a run holding this shard's lock gets here, so what is left in
	// its tmp folder belongs to a run that died.
	left, err := os.ReadDir(r.tmpDir)
	if err != nil {
		return nil, fmt.Errorf("clean %s: %w", r.tmpDir, err)
	}
	for _, e := range left {
		if err := os.RemoveAll(filepath.Join(r.tmpDir, e.Name())); err != nil {
			return nil, fmt.Errorf("remove partial output a stopped run left: %w", err)
		}
	}
	if len(left) > 0 {
		r.log.Info("removed partial outputs of an interrupted run", "count", len(left), "folder", r.tmpDir)
	}
	if r.state, err = openState(filepath.Join(r.stateDir, stateFileName(r.opts.Shard))); err != nil {
		return nil, err
	}
	return unlock, nil
}

// plan decides for each file whether it is done already, and fills the
// report's file entries.
func (r *runner) plan() error {
	states, err := loadStates(r.stateDir, r.log)
	if err != nil {
		return err
	}
	old, err := readOldReport(r.reportPath)
	if err != nil {
		r.log.Warn("cannot carry forward entries of the earlier report; skipped files will list what the state knows", "error", err)
	}
	for i, it := range r.items {
		f := &r.report.Files[i]
		*f = FileReport{Input: it.Rel, Output: it.OutRel, Status: StatusPending,
			InputSize: it.Size, InputMtime: it.ModTime.UTC()}
		st, seen := states[it.Rel]
		f.Reason = r.reason(it, st, seen)
		if f.Reason != ReasonAlreadyDone {
			continue
		}
		if o, ok := old[it.Rel]; ok && (o.Status == StatusDone || o.Status == StatusSkipped) &&
			o.Output == st.Output && o.OutputSHA256 == st.OutputSHA256 {
			*f = o
		} else {
			finished := st.Finished
			f.Finished = &finished
		}
		f.Status, f.Reason, f.Error = StatusSkipped, ReasonAlreadyDone, ""
		f.InputSize, f.InputMtime = it.Size, it.ModTime.UTC()
		f.OutputSize, f.OutputSHA256 = st.OutputSize, st.OutputSHA256
	}
	return nil
}

func (r *runner) reason(it Item, st StateEntry, seen bool) Reason {
	switch {
	case r.opts.Force:
		return ReasonForced
	case !seen:
		return ReasonNew
	case st.InputSize != it.Size || !st.InputMtime.Equal(it.ModTime):
		return ReasonInputChanged
	case st.SettingsHash != r.settingsHash:
		return ReasonSettingsChanged
	case st.Output != it.OutRel:
		return ReasonOutputChanged
	}
	out, err := os.Stat(it.Output)
	switch {
	case err != nil:
		return ReasonOutputMissing
	case !out.Mode().IsRegular() || out.Size() != st.OutputSize:
		return ReasonOutputChanged
	}
	return ReasonAlreadyDone
}

// process runs the pending files on opts.Jobs workers until all are done,
// ctx is cancelled, FailFast stops the batch or a fatal error occurs.
func (r *runner) process(parent context.Context) error {
	ctx, cancel := context.WithCancelCause(parent)
	defer cancel(nil)
	work := make(chan int)
	var wg sync.WaitGroup
	for range max(r.opts.Jobs, 1) {
		wg.Go(func() {
			for i := range work {
				r.processFile(ctx, cancel, i)
			}
		})
	}
feed:
	for i, f := range r.report.Files {
		if f.Status != StatusPending {
			continue
		}
		select {
		case work <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(work)
	wg.Wait()
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.fatal
}

// processFile processes file i and records the outcome. Its order of
// steps is what makes a kill at any moment safe; see the package doc.
func (r *runner) processFile(ctx context.Context, cancel context.CancelCauseFunc, i int) {
	if ctx.Err() != nil {
		return
	}
	it := r.items[i]
	started := time.Now()
	// The report names the files in flight, so that after a crash (say,
	// out of memory on a crowded video) it tells which file was running.
	r.mu.Lock()
	f := r.report.Files[i]
	running := f
	running.Status, running.Started = StatusRunning, ptr(started.UTC())
	r.setFileLocked(i, running)
	if err := r.writeReportLocked(); err != nil {
		r.setFileLocked(i, f)
		r.setFatalLocked(err, cancel)
		r.mu.Unlock()
		return
	}
	r.mu.Unlock()
	f = running

	res, err := r.run(ctx, &it)
	wall := time.Since(started)
	f.InputSize, f.InputMtime = it.Size, it.ModTime.UTC()
	f.fillResult(res, wall)
	f.Finished = ptr(time.Now().UTC())

	var fatal error
	switch {
	case err != nil && ctx.Err() != nil:
		// Cut short by cancellation (interrupt, fail-fast, fatal error):
		// not this file's fault, so it stays to do.
		f = FileReport{Input: f.Input, Output: f.Output, Status: StatusPending, Reason: f.Reason,
			InputSize: f.InputSize, InputMtime: f.InputMtime}
	case err != nil:
		f.Status, f.Error = StatusFailed, err.Error()
		r.log.Warn("file failed", "input", it.Rel, "error", err)
	case r.opts.AuditFail && res.Stats.Audit.LeakFrames > 0:
		a := res.Stats.Audit
		os.Remove(it.Output)
		f.Status = StatusFailed
		f.Error = fmt.Sprintf("the audit found a face in %d of the %d frames it searched (first at %.3f s, frame %d); "+
			"the output was removed (--audit-fail)", a.LeakFrames, a.Frames, a.Leaks[0].TimeSeconds, a.Leaks[0].Frame)
		r.log.Warn("file failed", "input", it.Rel, "error", f.Error)
	default:
		entry, ferr := r.check(it, *f.Finished)
		if ferr == nil {
			fatal = r.append(entry)
		}
		switch {
		case ferr != nil:
			f.Status, f.Error = StatusFailed, ferr.Error()
			r.log.Warn("file failed", "input", it.Rel, "error", ferr)
		case fatal != nil:
			// Not recorded, so not done: the next run redoes it.
			f.Status, f.Error = StatusFailed, fatal.Error()
		default:
			f.Status, f.OutputSize, f.OutputSHA256 = StatusDone, entry.OutputSize, entry.OutputSHA256
		}
	}

	r.mu.Lock()
	r.setFileLocked(i, f)
	if fatal == nil {
		fatal = r.writeReportLocked()
	}
	if fatal != nil {
		r.setFatalLocked(fatal, cancel)
	}
	if f.Status == StatusFailed && r.opts.FailFast && !r.stopped {
		r.stopped = true
		cancel(errStopped)
	}
	r.mu.Unlock()
	r.callHook(func() {
		if r.hooks.FileFinished != nil {
			r.hooks.FileFinished(f)
		}
	})
}

// setFatalLocked stops the batch for an error that is not one file's.
func (r *runner) setFatalLocked(err error, cancel context.CancelCauseFunc) {
	if r.fatal == nil {
		r.fatal = err
		cancel(err)
	}
}

// run processes one file; it refreshes its size and mtime first, so that
// the state records the input as it was when read.
func (r *runner) run(ctx context.Context, it *Item) (pipeline.Result, error) {
	st, err := os.Stat(it.Input)
	if err != nil {
		return pipeline.Result{}, fmt.Errorf("read %s: %w", it.Input, err)
	}
	it.Size, it.ModTime = st.Size(), st.ModTime()
	if err := os.MkdirAll(filepath.Dir(it.Output), 0o755); err != nil {
		return pipeline.Result{}, fmt.Errorf("create output folder: %w", err)
	}
	job := pipeline.Job{Input: it.Input, Output: it.Output, Overwrite: true, TempDir: r.tmpDir}
	hooks := pipeline.Hooks{
		Started: func(_ video.Info, frames int) {
			r.callHook(func() {
				if r.hooks.FileStarted != nil {
					r.hooks.FileStarted(*it, frames)
				}
			})
		},
		Frame: func(fr pipeline.FrameResult) {
			r.callHook(func() {
				if r.hooks.Frame != nil {
					r.hooks.Frame(*it, fr)
				}
			})
		},
	}
	return r.p.ProcessVideo(ctx, job, hooks)
}

// check makes a finished output durable and reads it back for its state
// line: the output's folder is fsynced so that the rename cannot be lost
// while the state line survives.
func (r *runner) check(it Item, finished time.Time) (StateEntry, error) {
	if err := atomicfile.SyncDir(filepath.Dir(it.Output)); err != nil {
		return StateEntry{}, err
	}
	sum, size, err := digest.FileSHA256(it.Output)
	if err != nil {
		return StateEntry{}, fmt.Errorf("read back the output: %w", err)
	}
	return StateEntry{
		Input: it.Rel, InputSize: it.Size, InputMtime: it.ModTime.UTC(),
		Output: it.OutRel, OutputSize: size, OutputSHA256: sum,
		SettingsHash: r.settingsHash, Finished: finished,
	}, nil
}

// append records a file as done; an error stops the batch, since nothing
// finished after it could be recorded either.
func (r *runner) append(e StateEntry) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.state.Append(e)
}

// setFileLocked replaces file i's report entry; r.mu must be held.
func (r *runner) setFileLocked(i int, f FileReport) {
	r.report.Files[i] = f
	r.enc.invalidate(i)
}

// writeReportLocked rewrites the report; r.mu must be held.
func (r *runner) writeReportLocked() error {
	now := time.Now().UTC()
	r.report.Updated = now
	r.report.Totals = computeTotals(r.report.Files, r.report.Started, now)
	b, err := r.enc.encode(&r.report)
	if err != nil {
		return err
	}
	// The temporary file goes to the state folder, so nothing partial
	// ever sits in the output tree.
	if err := atomicfile.WriteFileIn(r.stateDir, r.reportPath, b, 0o644); err != nil {
		return fmt.Errorf("update the batch report: %w", err)
	}
	return nil
}

func (r *runner) summary() Summary {
	files := append([]FileReport(nil), r.report.Files...)
	t := computeTotals(files, r.report.Started, r.report.Updated)
	s := Summary{
		Files: files, Totals: t,
		Done: t.Files.Done, Skipped: t.Files.Skipped, Failed: t.Files.Failed, Pending: t.Files.Pending + t.Files.Running,
		RunStatus: r.report.RunStatus, DryRun: r.opts.DryRun,
	}
	if !r.opts.DryRun {
		s.ReportPath = r.reportPath
	}
	return s
}

func (r *runner) callHook(fn func()) {
	r.hookMu.Lock()
	defer r.hookMu.Unlock()
	fn()
}

func ptr[T any](v T) *T { return &v }
