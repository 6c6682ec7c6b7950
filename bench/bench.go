package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"

	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/anonymize-dev/anonymize/internal/synthclip"
	"github.com/anonymize-dev/anonymize/models/synthetic"
	"github.com/anonymize-dev/anonymize/pipeline"
	"github.com/anonymize-dev/anonymize/video"
)

// frameSpan is the root of each frame's trace.
const frameSpan = "process_single_frame"

// Config says what to measure.
type Config struct {
	// Clip is the video to run on; empty generates the synthetic scene at
	// Width x Height with Frames frames.
	Clip                  string
	Width, Height, Frames int
	// Runs is how many times each side runs, alternately; the median run
	// is reported.
	Runs int
	// WorkDir holds the generated clip, the null models and the outputs;
	// empty uses a temporary folder removed at the end.
	WorkDir string
	// Pipeline is the run's settings. Without a detector and a pose model
	// the null models are used.
	Pipeline pipeline.Config
	// Progress, when set, is told what is being run.
	Progress func(string)
}

// DefaultConfig measures 600 frames of generated 1080p, once each.
func DefaultConfig() Config {
	return Config{Width: 1920, Height: 1080, Frames: 600, Runs: 1, Pipeline: pipeline.DefaultConfig()}
}

// Validate names the setting at fault.
func (c Config) Validate() error {
	switch {
	case c.Runs < 1:
		return fmt.Errorf("--runs %d: must be at least 1", c.Runs)
	case c.Clip == "" && (c.Width%2 != 0 || c.Height%2 != 0):
		return fmt.Errorf("--size %dx%d: must be even", c.Width, c.Height)
	case c.Clip == "" && c.Frames < 1:
		return fmt.Errorf("--frames %d: must be at least 1", c.Frames)
	case (c.Pipeline.DetectorModel == "") != (c.Pipeline.PoseModel == ""):
		return errors.New("--detector-model and --pose-model go together: give both, or neither for the null models")
	}
	if c.Clip == "" {
		if err := synthclip.DefaultScene(c.Width, c.Height, c.Frames).Validate(); err != nil {
			return fmt.Errorf("--size %dx%d: %w", c.Width, c.Height, err)
		}
	}
	return c.Pipeline.Validate()
}

// Usage is what one side of the comparison cost.
type Usage struct {
	Wall, User, Sys time.Duration
	// PeakRSS is the process's peak resident memory in bytes: ffmpeg's for
	// the reference, anonymize's own (without its ffmpeg) for the run.
	PeakRSS int64
}

// CPU is user plus system time.
func (u Usage) CPU() time.Duration { return u.User + u.Sys }

// Step is the time per frame one part of the pipeline took, from its spans.
type Step struct {
	Stage string // the concurrent stage it runs in
	Name  string // span name, under its parent's for nested ones
	// PerFrame is its summed duration divided by the frames.
	PerFrame time.Duration
}

// Stage is one of the pipeline's concurrent stages.
type Stage struct {
	Name    string
	Workers int // goroutines running it
	// Busy is the share of the run's wall time the stage's workers spent
	// working rather than waiting for frames or room downstream (their
	// mean, where there are several).
	Busy float64
}

// Result is one benchmark.
type Result struct {
	Clip          string
	Generated     bool
	Width, Height int
	Frames        int
	NullModels    bool
	Providers     string
	Batch         int    // frames per detector run
	Preprocess    string // where the detector's input is prepared: cpu or fused
	// PrepareWorkers is how many frames are prepared for the detector at
	// once.
	PrepareWorkers int
	Encoder        string
	Preset         string
	CRF            int
	FFmpeg         Usage
	Anonymize      Usage
	Steps          []Step
	Stages         []Stage
	// AllocsPerFrame and AllocBytesPerFrame are Go heap allocations during
	// the run, per frame, span recording included (C++ allocations in
	// OpenCV and ONNX Runtime are not seen).
	AllocsPerFrame, AllocBytesPerFrame float64
}

// FPS is a side's end-to-end rate.
func (r Result) FPS(u Usage) float64 {
	if u.Wall <= 0 {
		return 0
	}
	return float64(r.Frames) / u.Wall.Seconds()
}

// Ratio is ffmpeg's wall time over anonymize's: 1 means the pipeline costs
// no more than decoding and encoding alone.
func (r Result) Ratio() float64 {
	if r.Anonymize.Wall <= 0 {
		return 0
	}
	return r.FFmpeg.Wall.Seconds() / r.Anonymize.Wall.Seconds()
}

// steps are the spans the table shows, by stage, in pipeline order. A
// stage is busy for the sum of its steps.
var steps = []Step{
	{Stage: "decode", Name: "decode"},
	{Stage: "prepare", Name: "person_detection/preprocess"},
	{Stage: "detect", Name: "person_detection/inference"},
	{Stage: "detect", Name: "person_detection/postprocess"},
	{Stage: "pose", Name: "pose_estimation/preprocess"},
	{Stage: "pose", Name: "pose_estimation/inference"},
	{Stage: "pose", Name: "pose_estimation/postprocess"},
	{Stage: "track", Name: "track"},
	{Stage: "encode", Name: "mask"},
	{Stage: "encode", Name: "audit"},
	{Stage: "encode", Name: "encode"},
}

// stages are the pipeline's concurrent stages, in order.
var stages = []string{"decode", "prepare", "detect", "pose", "track", "encode"}

// Run generates what it needs, then runs ffmpeg and the pipeline in turn.
func Run(ctx context.Context, cfg Config, env pipeline.Env) (res Result, err error) {
	if err := cfg.Validate(); err != nil {
		return res, err
	}
	progress := cfg.Progress
	if progress == nil {
		progress = func(string) {}
	}
	ffmpeg, err := exec.LookPath("ffmpeg")
	if err != nil {
		return res, fmt.Errorf("the benchmark compares against ffmpeg, which was not found: install it (apt-get install ffmpeg): %w", err)
	}
	dir := cfg.WorkDir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "anonymize-bench-"); err != nil {
			return res, err
		}
		defer os.RemoveAll(dir)
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		return res, err
	}

	res.Clip = cfg.Clip
	if res.Clip == "" {
		res.Generated = true
		res.Clip = filepath.Join(dir, fmt.Sprintf("scene-%dx%d-%d.mp4", cfg.Width, cfg.Height, cfg.Frames))
		if _, err := os.Stat(res.Clip); err != nil {
			progress(fmt.Sprintf("generating a %dx%d clip of %d frames", cfg.Width, cfg.Height, cfg.Frames))
			if err := synthclip.DefaultScene(cfg.Width, cfg.Height, cfg.Frames).Write(ctx, res.Clip, ffmpeg); err != nil {
				return res, err
			}
		}
	}
	pc := cfg.Pipeline
	if pc.DetectorModel == "" {
		res.NullModels = true
		if pc.DetectorModel, pc.PoseModel, err = synthetic.WriteNullModels(dir); err != nil {
			return res, err
		}
	}
	res.Preset, res.CRF = pc.Preset.String(), pc.CRF

	engine, err := pipeline.NewEngine(pc, env)
	if err != nil {
		return res, err
	}
	defer engine.Close()
	res.Providers = engine.Providers()
	res.Batch = engine.DetectBatch()
	res.Preprocess = engine.Preprocess().String()
	res.PrepareWorkers = pipeline.DefaultPrepareWorkers(res.Batch)

	clock := newStageClock()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(clock))
	prev := otel.GetTracerProvider()
	otel.SetTracerProvider(tp)
	defer func() {
		otel.SetTracerProvider(prev)
		_ = tp.Shutdown(context.Background())
	}()

	type anonRun struct {
		usage         Usage
		steps         []Step
		stages        []Stage
		allocs, bytes float64
	}
	var refs []Usage
	var runs []anonRun
	refOut := filepath.Join(dir, "ffmpeg-out.mp4")
	out := filepath.Join(dir, "anonymize-out.mp4")
	for i := range cfg.Runs {
		progress(fmt.Sprintf("run %d of %d: ffmpeg", i+1, cfg.Runs))
		u, err := transcode(ctx, ffmpeg, res.Clip, refOut, engine.Codec(), pc.Preset, pc.CRF, pc.EncoderThreads)
		if err != nil {
			return res, err
		}
		refs = append(refs, u)

		progress(fmt.Sprintf("run %d of %d: anonymize", i+1, cfg.Runs))
		clock.reset()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		self0, kids0 := rusage(syscall.RUSAGE_SELF), rusage(syscall.RUSAGE_CHILDREN)
		start := time.Now()
		vr, err := engine.ProcessVideo(ctx, pipeline.Job{Input: res.Clip, Output: out, Overwrite: true}, pipeline.Hooks{})
		if err != nil {
			return res, err
		}
		wall := time.Since(start)
		self1, kids1 := rusage(syscall.RUSAGE_SELF), rusage(syscall.RUSAGE_CHILDREN)
		runtime.ReadMemStats(&after)

		res.Frames, res.Width, res.Height, res.Encoder = vr.Stats.Frames, vr.OutputWidth, vr.OutputHeight, vr.Encoder
		n := float64(max(vr.Stats.Frames, 1))
		run := anonRun{
			usage: Usage{
				Wall:    wall,
				User:    tv(self1.Utime) - tv(self0.Utime) + tv(kids1.Utime) - tv(kids0.Utime),
				Sys:     tv(self1.Stime) - tv(self0.Stime) + tv(kids1.Stime) - tv(kids0.Stime),
				PeakRSS: self1.Maxrss * 1024,
			},
			allocs: float64(after.Mallocs-before.Mallocs) / n,
			bytes:  float64(after.TotalAlloc-before.TotalAlloc) / n,
		}
		busy := map[string]time.Duration{}
		for _, s := range steps {
			d, _ := clock.get(s.Name)
			s.PerFrame = d / time.Duration(max(vr.Stats.Frames, 1))
			run.steps = append(run.steps, s)
			busy[s.Stage] += d
		}
		for _, name := range stages {
			workers := 1
			if name == "prepare" {
				workers = res.PrepareWorkers
			}
			run.stages = append(run.stages, Stage{Name: name, Workers: workers,
				Busy: busy[name].Seconds() / wall.Seconds() / float64(workers)})
		}
		runs = append(runs, run)
	}
	slices.SortFunc(refs, func(a, b Usage) int { return int(a.Wall - b.Wall) })
	slices.SortFunc(runs, func(a, b anonRun) int { return int(a.usage.Wall - b.usage.Wall) })
	res.FFmpeg = refs[len(refs)/2]
	med := runs[len(runs)/2]
	res.Anonymize, res.Steps, res.Stages = med.usage, med.steps, med.stages
	res.AllocsPerFrame, res.AllocBytesPerFrame = med.allocs, med.bytes
	return res, nil
}

// transcode runs the reference: ffmpeg alone, decoding and encoding.
func transcode(ctx context.Context, ffmpeg, in, out string, codec video.Codec, preset video.Preset, crf, threads int) (Usage, error) {
	cmd := exec.CommandContext(ctx, ffmpeg, video.TranscodeArgs(in, out, codec, preset, crf, threads)...)
	var msg bytes.Buffer
	cmd.Stdout, cmd.Stderr = &msg, &msg
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return Usage{}, fmt.Errorf("reference ffmpeg run: %w", err)
	}
	// The child's ru_maxrss would include this process's memory (Linux
	// counts the parent's address space, shared until exec, in it), so
	// the peak is read from the child's own VmHWM while it runs.
	peak := make(chan int64, 1)
	stop := make(chan struct{})
	go func() { peak <- watchPeakRSS(cmd.Process.Pid, stop) }()
	err := cmd.Wait()
	wall := time.Since(start)
	close(stop)
	u := Usage{Wall: wall, User: cmd.ProcessState.UserTime(), Sys: cmd.ProcessState.SystemTime(), PeakRSS: <-peak}
	if err != nil {
		return u, fmt.Errorf("reference ffmpeg run: %w: %s", err, msg.Bytes())
	}
	return u, nil
}

// watchPeakRSS reads a process's VmHWM (its peak resident memory) every
// 20 ms until stop is closed or the process is gone, and returns the last
// value read, in bytes.
func watchPeakRSS(pid int, stop <-chan struct{}) int64 {
	var peak int64
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		if err != nil {
			return peak
		}
		for _, line := range strings.Split(string(status), "\n") {
			var kb int64
			if n, _ := fmt.Sscanf(line, "VmHWM: %d kB", &kb); n == 1 {
				peak = max(peak, kb*1024)
			}
		}
		select {
		case <-stop:
			return peak
		case <-tick.C:
		}
	}
}

func rusage(who int) syscall.Rusage {
	var ru syscall.Rusage
	_ = syscall.Getrusage(who, &ru)
	return ru
}

func tv(t syscall.Timeval) time.Duration {
	return time.Duration(t.Sec)*time.Second + time.Duration(t.Usec)*time.Microsecond
}
