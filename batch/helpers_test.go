package batch

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/anonymize-dev/anonymize/internal/testutil"
	"github.com/anonymize-dev/anonymize/models"
	"github.com/anonymize-dev/anonymize/pipeline"
	"github.com/anonymize-dev/anonymize/video"
)

// Input contents the fake processor understands.
const (
	okVideo      = "video"
	corruptVideo = "corrupt"   // fails before anything is written, like a file that is not a video
	truncated    = "truncated" // fails after some frames, like a cut-off file
	blocking     = "block"     // waits for release (or cancellation) after the first frame
)

const fakeFrames = 3

// fakeProc imitates pipeline.Engine's contract without models: it checks
// the paths as the engine does, writes a partial file in Job.TempDir,
// reports frames through the hooks, and renames the file onto Job.Output
// only on success. Inputs whose content says so fail or block.
type fakeProc struct {
	models []pipeline.ModelRef
	// release unblocks blocking inputs; entered receives each blocking
	// input's path once it waits.
	release chan struct{}
	entered chan string
	// leaveTemp imitates an encoder killed mid-file: on cancellation the
	// partial file stays in the temp folder.
	leaveTemp bool

	mu          sync.Mutex
	calls       map[string]int
	inFlight    int
	maxInFlight int
	tempDirs    []string
}

func newFakeProc() *fakeProc {
	return &fakeProc{
		models: []pipeline.ModelRef{
			{Role: models.RoleDetector, Path: "models/detr.onnx", SHA256: strings.Repeat("a", 64), Provider: "CPUExecutionProvider"},
			{Role: models.RolePose, Path: "models/pose.onnx", SHA256: strings.Repeat("b", 64), Provider: "CPUExecutionProvider"},
		},
		release: make(chan struct{}),
		entered: make(chan string, 100),
		calls:   map[string]int{},
	}
}

func (p *fakeProc) Placement() pipeline.Placement {
	return pipeline.Placement{Device: "cpu", Providers: "CPUExecutionProvider", Models: p.models}
}

func (p *fakeProc) ProcessVideo(ctx context.Context, job pipeline.Job, hooks pipeline.Hooks) (res pipeline.Result, err error) {
	p.mu.Lock()
	p.calls[filepath.Base(job.Input)]++
	p.inFlight++
	p.maxInFlight = max(p.maxInFlight, p.inFlight)
	p.tempDirs = append(p.tempDirs, job.TempDir)
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		p.inFlight--
		p.mu.Unlock()
	}()

	if err := video.CheckPaths(job.Input, job.Output, job.Overwrite); err != nil {
		return res, err
	}
	data, err := os.ReadFile(job.Input)
	if err != nil {
		return res, err
	}
	content := string(data)
	if strings.HasPrefix(content, corruptVideo) {
		return res, fmt.Errorf("open %s: not a video (no video stream)\nffprobe said: invalid data", job.Input)
	}
	res.Input = video.Info{Path: job.Input, Width: 16, Height: 8, FPS: video.Rational{Num: 30000, Den: 1001},
		FrameCount: fakeFrames, Duration: 100 * time.Millisecond, Codec: "fake", HasAudio: true}
	res.Output, res.Encoder = job.Output, "fake"

	dir := job.TempDir
	if dir == "" {
		dir = filepath.Dir(job.Output)
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(job.Output)+".anonymize-*"+filepath.Ext(job.Output))
	if err != nil {
		return res, err
	}
	defer func() {
		if err != nil && !(p.leaveTemp && ctx.Err() != nil) {
			os.Remove(tmp.Name())
		}
	}()
	defer tmp.Close()
	if hooks.Started != nil {
		hooks.Started(res.Input, fakeFrames)
	}
	start := time.Now()
	for i := range fakeFrames {
		fmt.Fprintf(tmp, "anonymized frame %d of %s\n", i, content)
		people := make([]pipeline.Person, i) // 0, 1, 2 people
		res.Stats.Frames++
		res.Stats.People += i
		if i == 0 || i < res.Stats.MinPeople {
			res.Stats.MinPeople = i
		}
		res.Stats.MaxPeople = max(res.Stats.MaxPeople, i)
		if i > 0 {
			res.Stats.FramesWithPeople++
			res.Stats.Masks.Nose += i
		}
		if hooks.Frame != nil {
			hooks.Frame(pipeline.FrameResult{Index: i, People: people})
		}
		if i == 0 && strings.HasPrefix(content, blocking) {
			p.entered <- job.Input
			select {
			case <-p.release:
			case <-ctx.Done():
				return res, fmt.Errorf("%s: %w", job.Input, ctx.Err())
			}
		}
		if i == 1 && strings.HasPrefix(content, truncated) {
			return res, fmt.Errorf("%s: frame 2: end of file in the middle of a frame", job.Input)
		}
	}
	res.Stats.Elapsed = time.Since(start)
	if err := tmp.Sync(); err != nil {
		return res, err
	}
	if err := tmp.Close(); err != nil {
		return res, err
	}
	if err := os.Rename(tmp.Name(), job.Output); err != nil {
		return res, err
	}
	return res, nil
}

func (p *fakeProc) callCounts() map[string]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := map[string]int{}
	for k, v := range p.calls {
		out[k] = v
	}
	return out
}

// waitEntered waits until n blocking inputs are waiting in the fake. The
// limit only keeps a broken Run from hanging the test binary.
func (p *fakeProc) waitEntered(t *testing.T, n int) []string {
	t.Helper()
	var got []string
	for len(got) < n {
		select {
		case in := <-p.entered:
			got = append(got, in)
		case <-time.After(20 * time.Second):
			t.Fatalf("only %d of %d videos were being processed at once: %v", len(got), n, got)
		}
	}
	return got
}

// writeTree creates files (slash paths relative to root) with the given
// contents, and their folders.
func writeTree(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for rel, content := range files {
		p := filepath.Join(root, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// testDirs returns a fresh IN_DIR holding files and an OUT_DIR beside it
// (not yet created).
func testDirs(t *testing.T, files map[string]string) (in, out string) {
	t.Helper()
	root := t.TempDir()
	in, out = filepath.Join(root, "in"), filepath.Join(root, "out")
	if err := os.Mkdir(in, 0o755); err != nil {
		t.Fatal(err)
	}
	writeTree(t, in, files)
	return in, out
}

func testOptions(in, out string) Options {
	cfg := pipeline.DefaultConfig()
	return Options{
		InDir: in, OutDir: out, Jobs: 1, Config: cfg, ToolVersion: "test",
		Settings: map[string]string{"crf": fmt.Sprint(cfg.CRF), "jobs": "1"},
	}
}

// runResult is what Run returned in a background goroutine.
type runResult struct {
	sum Summary
	err error
}

type pendingRun chan runResult

// startRun runs Run in the background, for tests that act while it runs.
func startRun(ctx context.Context, opts Options, p Processor, hooks Hooks) pendingRun {
	done := make(pendingRun, 1)
	go func() {
		sum, err := Run(ctx, opts, p, hooks)
		done <- runResult{sum, err}
	}()
	return done
}

// wait returns Run's result. The limit only keeps a Run that never returns
// (one that failed to cancel its work) from hanging the test binary.
func (r pendingRun) wait(t *testing.T) runResult {
	t.Helper()
	select {
	case res := <-r:
		return res
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not return within 20 s")
		return runResult{}
	}
}

// runOK runs a batch that must not fail as a whole.
func runOK(t *testing.T, opts Options, p Processor, hooks Hooks) Summary {
	t.Helper()
	sum, err := Run(context.Background(), opts, p, hooks)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	return sum
}

func statuses(files []FileReport) map[string]string {
	out := map[string]string{}
	for _, f := range files {
		out[f.Input] = string(f.Status) + "/" + string(f.Reason)
	}
	return out
}

// outputTree lists the files under out, except the batch's own folder and
// reports: what a user of the outputs sees.
func outputTree(t *testing.T, out string) map[string]string {
	t.Helper()
	got := map[string]string{}
	err := filepath.WalkDir(out, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(out, p)
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			if rel == stateDirName {
				return filepath.SkipDir
			}
			return nil
		}
		if strings.HasPrefix(rel, "anonymize-report") {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		got[rel] = string(b)
		return nil
	})
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	return got
}

// wantOutput is what the fake writes for an input's content.
func wantOutput(content string) string {
	var b strings.Builder
	for i := range fakeFrames {
		fmt.Fprintf(&b, "anonymized frame %d of %s\n", i, content)
	}
	return b.String()
}

// validateReport checks the report at path against report.schema.json.
func validateReport(t *testing.T, path string) {
	t.Helper()
	testutil.CheckJSONFile(t, ReportSchema, path)
}

func validateReportJSON(t *testing.T, b []byte) error {
	t.Helper()
	return testutil.ValidateJSON(t, ReportSchema, b)
}

func readReport(t *testing.T, path string) Report {
	t.Helper()
	r, err := ReadReport(path)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// checkTotals checks that a report's totals agree with its files.
func checkTotals(t *testing.T, r Report) {
	t.Helper()
	var c FileCounts
	frames, people := 0, 0
	for _, f := range r.Files {
		c.Total++
		switch f.Status {
		case StatusDone:
			c.Done++
			frames += f.Frames
			people += f.People.Total
		case StatusSkipped:
			c.Skipped++
		case StatusFailed:
			c.Failed++
		case StatusPending:
			c.Pending++
		case StatusRunning:
			c.Running++
		}
	}
	if r.Totals.Files != c || r.Totals.Frames != frames || r.Totals.People != people {
		t.Errorf("totals %+v do not match the files: counts %+v, frames %d, people %d", r.Totals, c, frames, people)
	}
}
