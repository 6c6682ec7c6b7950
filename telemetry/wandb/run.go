package wandb

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// SyncCommand is the command that uploads a saved run; messages name it.
const SyncCommand = "anonymize wandb sync"

// Options configure Start.
type Options struct {
	// Settings come from SettingsFromEnv.
	Settings Settings
	// Config is the run's configuration as W&B shows it (the command's
	// flags, the models' sha256...). Values must encode as JSON.
	Config map[string]any
	// GPUIndex maps a GPU UUID (the hw.id metric attribute) to the index
	// W&B should show; nil, or a UUID it does not know, numbers GPUs in
	// order of first appearance.
	GPUIndex func(uuid string) (int, bool)
	// Logger hears the warnings (falling back to offline, the upload
	// failing); nil discards them.
	Logger *slog.Logger
	// Program and JobType label the run in W&B (default Program:
	// "anonymize").
	Program, JobType string
	// QueueSize bounds the lines waiting for the disk (default 4096);
	// beyond it lines are dropped and counted, never waited for.
	QueueSize int
	// MaxPendingTraces bounds the frames waiting for their root span
	// (default 2048); the oldest are dropped and counted.
	MaxPendingTraces int

	// now replaces the clock in tests.
	now func() time.Time
}

// Run records one run of the program as a W&B run: always in a local run
// folder, and in online mode uploaded as it goes. Its exporters plug into
// the OpenTelemetry SDK; nothing they do waits on the disk or the network.
type Run struct {
	mode     Mode
	settings Settings
	dir      string
	infoMu   sync.Mutex // run.json: SetConfig and Finish rewrite it
	info     runInfo
	start    time.Time
	now      func() time.Time
	log      *slog.Logger

	mu     sync.RWMutex // guards closed against the queue's close
	closed bool
	end    time.Time
	q      chan record

	w       *localWriter
	summary *summaryState
	spans   *spanExporter
	metrics *metricExporter
	drops   struct {
		queueFull, incompleteTraces, spansOverCap, lateSpans, lateEvents atomic.Int64
	}

	up       *uploader
	upCancel context.CancelFunc
	upDone   chan struct{}
	upErr    error // set before upDone closes
	finishCh chan int
	// newConfig holds a config SetConfig changed, for the uploader to send.
	newConfig atomic.Pointer[map[string]any]
	warnOnce  sync.Once

	finishOnce sync.Once
	result     Result
}

// Start creates the run folder and starts writing (and, online,
// uploading) in the background. In online mode without an API key it
// falls back to offline and warns through Options.Logger. An error means
// nothing can be recorded (the folder cannot be created); the program
// should warn and go on without W&B.
func Start(opts Options) (*Run, error) {
	s := opts.Settings
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	now := opts.now
	if now == nil {
		now = time.Now
	}
	r := &Run{mode: s.Mode, settings: s, log: log, now: now, summary: &summaryState{video: map[string]any{}, extra: map[string]any{}}}
	if r.mode == "" {
		r.mode = ModeOnline
	}
	if r.mode == ModeDisabled {
		r.closed = true
		r.spans = newSpanExporter(r, 1, 1)
		r.metrics = newMetricExporter(r, nil)
		return r, nil
	}
	if s.Project == "" {
		s.Project = DefaultProject
	}
	if s.Dir == "" {
		s.Dir = "."
	}
	if s.BaseURL == "" {
		s.BaseURL = DefaultBaseURL
	}
	if s.RunID == "" {
		id, err := NewRunID()
		if err != nil {
			return nil, err
		}
		s.RunID = id
	}
	r.settings = s
	if r.mode == ModeOnline && s.APIKey == "" {
		log.Warn("W&B: WANDB_API_KEY is not set, so the run is saved offline; set it and run `" + SyncCommand + "` to upload")
		r.mode = ModeOffline
	}
	if _, err := json.Marshal(opts.Config); err != nil {
		return nil, fmt.Errorf("W&B run config: %w", err)
	}
	up := s.Upload.withDefaults()
	queue := opts.QueueSize
	if queue <= 0 {
		queue = 4096
	}
	maxPending := opts.MaxPendingTraces
	if maxPending <= 0 {
		maxPending = 2048
	}
	program := opts.Program
	if program == "" {
		program = "anonymize"
	}
	host, _ := os.Hostname()

	r.start = now()
	parent := filepath.Join(s.Dir, "wandb")
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return nil, fmt.Errorf("create the W&B folder (check WANDB_DIR): %w", err)
	}
	r.dir = filepath.Join(parent, runFolderName(r.mode, r.start, s.RunID))
	if err := os.Mkdir(r.dir, 0o755); err != nil {
		return nil, fmt.Errorf("create the W&B run folder: %w", err)
	}
	r.info = runInfo{
		ID: s.RunID, DisplayName: s.RunName, Entity: s.Entity, Project: s.Project, Mode: r.mode,
		Config: maps.Clone(opts.Config), Host: host, Program: program, JobType: opts.JobType, StartTime: r.start,
	}
	if err := writeJSONFile(filepath.Join(r.dir, runFileName), r.info, true); err != nil {
		return nil, err
	}
	w, err := newLocalWriter(r.dir, r.start, queue, r.summary, up.SummaryInterval, log)
	if err != nil {
		return nil, err
	}
	r.w, r.q = w, w.q
	r.spans = newSpanExporter(r, maxPending, 4096)
	r.metrics = newMetricExporter(r, opts.GPUIndex)

	if r.mode == ModeOnline {
		c := &client{base: s.BaseURL, apiKey: s.APIKey, opts: up, onRetry: func(err error, _ time.Duration) {
			// Info, not a warning: trouble during the run is summed up
			// once, in Finish's Result, like a collector that is down.
			r.warnOnce.Do(func() {
				log.Info("W&B: upload failing, retrying in the background; the run is saved locally meanwhile", "dir", r.dir, "err", err)
			})
		}}
		u, err := newUploader(c, r.dir, r.info, syncState{}, s.Entity, s.Project)
		if err != nil {
			return nil, err
		}
		r.up = u
		w.wake, w.wakeLines = make(chan struct{}, 1), up.MaxBatchLines
		ctx, cancel := context.WithCancel(context.Background())
		r.upCancel, r.upDone, r.finishCh = cancel, make(chan struct{}), make(chan int, 1)
		go r.upload(ctx, up.FlushInterval)
	}
	go w.loop(func() time.Time { return r.end })
	return r, nil
}

// Mode is where the run goes: ModeOffline also after falling back from
// online for want of an API key.
func (r *Run) Mode() Mode { return r.mode }

// Dir is the local run folder ("" when disabled), the argument `anonymize
// wandb sync` takes.
func (r *Run) Dir() string { return r.dir }

// SpanExporter receives the program's spans, best through a
// BatchSpanProcessor: each process_single_frame trace becomes a history
// row and anonymize_video's attributes go to the summary.
func (r *Run) SpanExporter() sdktrace.SpanExporter { return r.spans }

// MetricExporter receives the program's metrics, best through a
// PeriodicReader: GPU gauges and the people count become W&B system
// events.
func (r *Run) MetricExporter() sdkmetric.Exporter { return r.metrics }

// SetConfig adds to (or overrides) the run's config, for what is known
// only once the run started (the models' sha256). It rewrites run.json
// and, online, updates the run on the server. Values that cannot encode
// as JSON are left out with a warning. It does nothing after Finish.
func (r *Run) SetConfig(kv map[string]any) {
	if r.isClosed() {
		return
	}
	r.infoMu.Lock()
	defer r.infoMu.Unlock()
	// A new map, never a changed one: the uploader may be encoding the
	// previous one.
	cfg := maps.Clone(r.info.Config)
	if cfg == nil {
		cfg = map[string]any{}
	}
	for k, v := range kv {
		if _, err := json.Marshal(v); err != nil {
			r.log.Warn("W&B: config value left out", "key", k, "err", err)
			continue
		}
		cfg[k] = v
	}
	r.info.Config = cfg
	if err := writeJSONFile(filepath.Join(r.dir, runFileName), r.info, true); err != nil {
		r.log.Warn("W&B: cannot record the run config", "err", err)
	}
	if r.up != nil {
		r.newConfig.Store(&cfg)
	}
}

// SetSummary adds to (or overrides) the run's summary, e.g. totals known
// only at the end. Values that cannot encode as JSON are left out with a
// warning. It does nothing after Finish.
func (r *Run) SetSummary(kv map[string]any) {
	if r.isClosed() {
		return
	}
	ok := make(map[string]any, len(kv))
	for k, v := range kv {
		if _, err := json.Marshal(v); err != nil {
			r.log.Warn("W&B: summary value left out", "key", k, "err", err)
			continue
		}
		ok[k] = v
	}
	r.summary.merge(r.summary.extra, ok)
}

func (r *Run) setVideo(attrs []attribute.KeyValue) {
	kv := make(map[string]any, len(attrs))
	for _, a := range attrs {
		if v, ok := attrValue(a.Value); ok {
			kv[VideoSummaryPrefix+string(a.Key)] = v
		}
	}
	r.summary.merge(r.summary.video, kv)
}

func (r *Run) isClosed() bool {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.closed
}

func (r *Run) enqueueHistory(row map[string]any) { r.enqueue(record{history: row}, &r.drops.lateSpans) }

func (r *Run) enqueueEvent(ev map[string]any) { r.enqueue(record{event: ev}, &r.drops.lateEvents) }

// enqueue hands a line to the writer without ever waiting: a full queue
// means the disk cannot keep up, and the program matters more.
func (r *Run) enqueue(rec record, late *atomic.Int64) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.closed {
		late.Add(1)
		return
	}
	select {
	case r.q <- rec:
	default:
		r.drops.queueFull.Add(1)
	}
}

// upload runs the online uploader until the run completes, a failure is
// final, or Finish runs out of time.
func (r *Run) upload(ctx context.Context, interval time.Duration) {
	defer close(r.upDone)
	stop := func(err error) {
		r.upErr = err
		if ctx.Err() == nil {
			r.log.Info(fmt.Sprintf("W&B: upload stopped, the run is saved in %s; upload it later with `%s %s`", r.dir, SyncCommand, r.dir), "err", err)
		}
	}
	if err := r.up.create(ctx); err != nil {
		stop(err)
		return
	}
	// sendConfig updates the run when SetConfig changed its config.
	sendConfig := func() error {
		cfg := r.newConfig.Swap(nil)
		if cfg == nil {
			return nil
		}
		r.up.info.Config = *cfg
		return r.up.create(ctx)
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case code := <-r.finishCh:
			err := sendConfig()
			if err == nil {
				err = r.up.finish(ctx, code)
			}
			if err != nil {
				stop(err)
			}
			return
		case <-ctx.Done():
			r.upErr = ctx.Err()
			return
		case <-tick.C:
		case <-r.w.wake:
		}
		if err := sendConfig(); err != nil {
			stop(err)
			return
		}
		if err := r.up.pushAll(ctx); err != nil {
			stop(err)
			return
		}
	}
}

// Result says what became of a run.
type Result struct {
	Mode Mode
	// Dir is the local run folder.
	Dir string
	// RunURL is the run's page, once the server created it.
	RunURL string
	// HistoryRows and Events are the lines written locally.
	HistoryRows, Events int
	// UploadedHistoryRows and UploadedEvents are the lines the server
	// acknowledged.
	UploadedHistoryRows, UploadedEvents int
	// SummaryUploaded says the server has the final summary.
	SummaryUploaded bool
	// Completed says the server acknowledged the end of the run.
	Completed bool
	// Dropped counts what never reached the local files.
	Dropped Dropped
	// LocalErr is the first failure to write the run folder.
	LocalErr error
	// UploadErr is why the upload stopped short, in online mode.
	UploadErr error
	// Message, when not empty, is one line for the user: the upload is
	// incomplete (or the run offline) and `anonymize wandb sync DIR` will
	// upload it.
	Message string
}

// Dropped counts lost data by cause.
type Dropped struct {
	// QueueFull: rows and events the writer could not take in time.
	QueueFull int
	// IncompleteTraces: frames whose root span never arrived.
	IncompleteTraces int
	// SpansOverCap: spans beyond the per-frame bound.
	SpansOverCap int
	// LateSpans and LateEvents arrived after Finish.
	LateSpans, LateEvents int
	// Unwritten: lines lost after a local write failure.
	Unwritten int
}

// Total is the sum of all causes.
func (d Dropped) Total() int {
	return d.QueueFull + d.IncompleteTraces + d.SpansOverCap + d.LateSpans + d.LateEvents + d.Unwritten
}

// Finish ends the run: it records exitCode and the end time in run.json,
// writes out the local files, then in online mode gives the uploader until
// ctx's deadline to send the rest and mark the run complete. Pass a ctx
// with a deadline: a server that keeps failing is retried until then.
// Spans and metrics exported afterwards are dropped, so shut the tracer
// and meter providers down first. Calling Finish again returns the first
// result.
func (r *Run) Finish(ctx context.Context, exitCode int) Result {
	r.finishOnce.Do(func() { r.result = r.finish(ctx, exitCode) })
	return r.result
}

func (r *Run) finish(ctx context.Context, exitCode int) Result {
	if r.mode == ModeDisabled {
		return Result{Mode: ModeDisabled}
	}
	end := r.now()
	r.mu.Lock()
	r.closed, r.end = true, end
	close(r.q)
	r.mu.Unlock()
	r.drops.incompleteTraces.Add(int64(r.spans.pendingTraces()))

	res := Result{Mode: r.mode, Dir: r.dir}
	written := false
	select {
	case <-r.w.done:
		written = true
	case <-ctx.Done():
		res.LocalErr = fmt.Errorf("the run folder was not fully written in time: %w", ctx.Err())
	}
	r.infoMu.Lock()
	r.info.EndTime, r.info.ExitCode = &end, &exitCode
	if err := writeJSONFile(filepath.Join(r.dir, runFileName), r.info, true); err != nil && res.LocalErr == nil {
		res.LocalErr = err
	}
	r.infoMu.Unlock()
	if written {
		res.HistoryRows, res.Events = r.w.historyN, r.w.eventsN
		if r.w.err != nil && res.LocalErr == nil {
			res.LocalErr = r.w.err
		}
	}

	if r.up != nil {
		if written {
			r.finishCh <- exitCode
		} else {
			r.upCancel()
		}
		select {
		case <-r.upDone:
		case <-ctx.Done():
			r.upCancel()
			<-r.upDone
		}
		r.upCancel()
		st := r.up.state
		res.UploadedHistoryRows, res.UploadedEvents, res.Completed = st.HistoryLines, st.EventsLines, st.Completed
		_, hash, _ := readSummary(r.dir)
		res.SummaryUploaded = hash != "" && st.SummarySHA256 == hash
		if st.Entity != "" {
			res.RunURL = runURL(r.settings.BaseURL, st.Entity, st.Project, r.info.ID)
		}
		res.UploadErr = r.upErr
	}
	if written {
		res.Dropped.Unwritten = r.w.lost
	}
	res.Dropped.QueueFull = int(r.drops.queueFull.Load())
	res.Dropped.IncompleteTraces = int(r.drops.incompleteTraces.Load())
	res.Dropped.SpansOverCap = int(r.drops.spansOverCap.Load())
	res.Dropped.LateSpans = int(r.drops.lateSpans.Load())
	res.Dropped.LateEvents = int(r.drops.lateEvents.Load())

	switch {
	case r.mode == ModeOffline:
		res.Message = fmt.Sprintf("W&B run saved offline in %s; upload it with `%s %s`", r.dir, SyncCommand, r.dir)
	case !res.Completed:
		why := "the upload did not finish"
		switch {
		case res.UploadErr == nil:
		case errors.Is(res.UploadErr, context.DeadlineExceeded) || errors.Is(res.UploadErr, context.Canceled):
			why = "the upload ran out of time"
		default:
			why = res.UploadErr.Error()
		}
		res.Message = fmt.Sprintf("W&B upload incomplete (%d of %d history rows sent: %s); upload the rest with `%s %s`",
			res.UploadedHistoryRows, res.HistoryRows, why, SyncCommand, r.dir)
	}
	return res
}
