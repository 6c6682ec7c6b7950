package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"syscall"
	"testing"

	"github.com/spf13/cobra"

	"github.com/anonymize-dev/anonymize/batch"
	"github.com/anonymize-dev/anonymize/inference"
	"github.com/anonymize-dev/anonymize/models"
	"github.com/anonymize-dev/anonymize/pipeline"
	"github.com/anonymize-dev/anonymize/video"
)

// testFactory returns a Factory whose streams are buffers and whose
// environment is the given map.
func testFactory(t *testing.T, env map[string]string) (*Factory, *bytes.Buffer, *bytes.Buffer) {
	t.Helper()
	var out, errOut bytes.Buffer
	return &Factory{
		IO:         &IOStreams{In: strings.NewReader(""), Out: &out, ErrOut: &errOut},
		Getenv:     func(k string) string { return env[k] },
		Executable: func() (string, error) { return "/opt/anonymize/bin/anonymize", nil },
		Getwd:      func() (string, error) { return "/data", nil },
	}, &out, &errOut
}

func TestNewCmdVideoFlags(t *testing.T) {
	def := pipeline.DefaultConfig()
	tests := []struct {
		name    string
		args    []string
		want    func(*VideoOptions)
		wantErr string
	}{
		{
			name: "defaults",
			args: []string{"in.mp4", "out.mp4"},
			want: func(o *VideoOptions) {},
		},
		{
			name: "every flag",
			args: []string{"--device", "cuda:1", "--ort-lib", "/x/libonnxruntime.so", "--models-dir", "/m",
				"--detector-model", "d.onnx", "--pose-model", "p.onnx", "--threshold", "0.8", "--detect-size", "640",
				"--batch", "8", "--preprocess", "fused", "--pose-batch", "4", "--kpt-threshold", "0.5", "--mask-scale", "1.3", "--crf", "23", "--preset", "slow",
				"--audio", "drop", "--subtitles", "drop", "--frames", "10", "--draw", "--overwrite", "-q",
				"--encoder", "hevc_nvenc", "--encoder-threads", "6", "a.mov", "b.mkv"},
			want: func(o *VideoOptions) {
				o.Input, o.Output = "a.mov", "b.mkv"
				o.Overwrite, o.Quiet = true, true
				c := &o.Config
				o.Locations = Locations{ORTLib: "/x/libonnxruntime.so", ModelsDir: "/m"}
				c.Device = inference.Device{Kind: inference.DeviceCUDA, ID: 1}
				c.DetectorModel, c.PoseModel = "d.onnx", "p.onnx"
				c.Threshold, c.DetectSize, c.PoseBatch, c.KptThreshold, c.MaskScale = 0.8, 640, 4, 0.5, 1.3
				c.CRF, c.Preset, c.Audio, c.Subtitles, c.Frames, c.Draw = 23, "slow", video.AudioDrop, video.SubtitlesDrop, 10, true
				c.Encoder, c.EncoderThreads, c.Batch, c.Preprocess = "hevc_nvenc", 6, 8, "fused"
			},
		},
		{name: "one argument", args: []string{"in.mp4"}, wantErr: "accepts 2 arg(s)"},
		{name: "bad device", args: []string{"--device", "tpu", "a", "b"}, wantErr: "--device"},
		{name: "threshold above 1", args: []string{"--threshold", "1.5", "a", "b"}, wantErr: "--threshold 1.5"},
		{name: "unknown preprocess", args: []string{"--preprocess", "gpu", "a", "b"}, wantErr: `invalid argument "gpu" for "--preprocess" flag: use one of auto, cpu, fused`},
		{name: "batch too large", args: []string{"--batch", "65", "a", "b"}, wantErr: "--batch 65"},
		{name: "zero pose batch", args: []string{"--pose-batch", "0", "a", "b"}, wantErr: "--pose-batch 0"},
		{name: "crf out of range", args: []string{"--crf", "60", "a", "b"}, wantErr: "--crf 60"},
		{name: "unknown preset", args: []string{"--preset", "warp", "a", "b"}, wantErr: "--preset"},
		{name: "bad audio", args: []string{"--audio", "mute", "a", "b"}, wantErr: "--audio"},
		{name: "bad subtitles", args: []string{"--subtitles", "burn", "a", "b"}, wantErr: "--subtitles"},
		{name: "unknown encoder", args: []string{"--encoder", "x265", "a", "b"}, wantErr: `invalid argument "x265" for "--encoder" flag: unknown encoder "x265"`},
		{name: "negative encoder threads", args: []string{"--encoder-threads", "-2", "a", "b"}, wantErr: "--encoder-threads -2"},
		{name: "output container not written", args: []string{"in.mp4", "out.webm"}, wantErr: "out.webm has unsupported extension .webm; name it with one of .mp4"},
		{name: "output without extension", args: []string{"in.mp4", "out"}, wantErr: "output out has no file extension"},
		{name: "negative frames", args: []string{"--frames", "-1", "a", "b"}, wantErr: "--frames -1"},
		{name: "tiny detect size", args: []string{"--detect-size", "8", "a", "b"}, wantErr: "--detect-size 8"},
		{name: "negative mask scale", args: []string{"--mask-scale", "-1", "a", "b"}, wantErr: "--mask-scale"},
		{name: "NaN threshold", args: []string{"--threshold", "NaN", "a", "b"}, wantErr: "--threshold NaN"},
		{name: "NaN keypoint threshold", args: []string{"--kpt-threshold", "nan", "a", "b"}, wantErr: "--kpt-threshold NaN"},
		{name: "unknown flag", args: []string{"--fast", "a", "b"}, wantErr: "unknown flag: --fast"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, _, _ := testFactory(t, nil)
			got := parseOptions(t, f, NewCmdVideo, tt.args, tt.wantErr)
			if got == nil {
				return
			}
			want := &VideoOptions{IO: f.IO, Input: "in.mp4", Output: "out.mp4", Config: def}
			tt.want(want)
			if got.Input != want.Input || got.Output != want.Output || got.Overwrite != want.Overwrite ||
				got.Quiet != want.Quiet || got.Config != want.Config || got.Locations != want.Locations {
				t.Errorf("options\n got %+v\nwant %+v", *got, *want)
			}
			if got.Env.Library.Executable != "/opt/anonymize/bin/anonymize" || got.Env.Library.Flag != want.Locations.ORTLib {
				t.Errorf("env %+v not taken from the flags and the factory", got.Env)
			}
			if want.Locations.ModelsDir != "" && got.Env.Models != (models.Folder{Dir: "/m", Source: models.SourceFlag}) {
				t.Errorf("model folder %+v, want /m from --models-dir", got.Env.Models)
			}
		})
	}
}

func TestExecuteExitCodes(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantErr  string
	}{
		{"usage error", []string{"video", "only-one"}, exitUsage, "accepts 2 arg(s)"},
		{"bad flag value", []string{"video", "--crf", "0", "a.mp4", "b.mp4"}, exitUsage, "--crf 0"},
		{"unknown command", []string{"frobnicate"}, exitUsage, "unknown command"},
		{"missing input", []string{"video", "/nonexistent/in.mp4", "out.mp4"}, exitError, "does not exist"},
		{"unsupported output", []string{"video", "/nonexistent/in.mp4", "out.webm"}, exitUsage, "unsupported extension .webm"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, _, errOut := testFactory(t, nil)
			code := Execute(context.Background(), f, tt.args...)
			if code != tt.wantCode {
				t.Errorf("exit %d, want %d; stderr:\n%s", code, tt.wantCode, errOut)
			}
			first, _, _ := strings.Cut(errOut.String(), "\n")
			if !strings.HasPrefix(first, "anonymize: error: ") || !strings.Contains(first, tt.wantErr) {
				t.Errorf("first stderr line %q, want an error mentioning %q", first, tt.wantErr)
			}
		})
	}
}

// TestEngineEnv: the factory resolves where the runtime and the models
// are, flags first, then the environment, then the working folder and the
// binary's; the libraries get only the result.
func TestEngineEnv(t *testing.T) {
	tests := []struct {
		name string
		loc  Locations
		env  map[string]string
		want pipeline.Env
	}{
		{
			name: "flags",
			loc:  Locations{ORTLib: "/x/lib.so", ModelsDir: "m", AuditModel: "face.onnx"},
			env:  map[string]string{"ANONYMIZE_ORT_LIB": "/env/lib.so", "ANONYMIZE_MODELS": "/env/models", "ANONYMIZE_AUDIT_MODEL": "/env/face.onnx"},
			want: pipeline.Env{
				Library:    inference.LibrarySearch{Flag: "/x/lib.so", Env: "/env/lib.so", Executable: "/opt/anonymize/bin/anonymize"},
				Models:     models.Folder{Dir: "/data/m", Source: models.SourceFlag},
				AuditModel: "face.onnx",
			},
		},
		{
			name: "environment",
			env:  map[string]string{"ANONYMIZE_ORT_LIB": "/env/lib.so", "ANONYMIZE_MODELS": "/env/models", "ANONYMIZE_AUDIT_MODEL": "/env/face.onnx"},
			want: pipeline.Env{
				Library:    inference.LibrarySearch{Env: "/env/lib.so", Executable: "/opt/anonymize/bin/anonymize"},
				Models:     models.Folder{Dir: "/env/models", Source: models.SourceEnv},
				AuditModel: "/env/face.onnx",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, _, _ := testFactory(t, tt.env)
			got := f.engineEnv(tt.loc)
			gl, wl := got.Library, tt.want.Library
			if gl.Flag != wl.Flag || gl.Env != wl.Env || gl.Executable != wl.Executable || got.Models != tt.want.Models || got.AuditModel != tt.want.AuditModel {
				t.Errorf("engineEnv = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestExitCodeOf(t *testing.T) {
	byTERM, cancelTERM := context.WithCancelCause(context.Background())
	cancelTERM(interruption{syscall.SIGTERM})
	byHUP, cancelHUP := context.WithCancelCause(context.Background())
	cancelHUP(interruption{syscall.SIGHUP})
	byINT, cancelINT := context.WithCancelCause(context.Background())
	cancelINT(interruption{syscall.SIGINT})
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	stopped := fmt.Errorf("frame 3: %w", context.Canceled)
	tests := []struct {
		name string
		ctx  context.Context
		err  error
		want int
	}{
		{"success", context.Background(), nil, 0},
		{"failure", context.Background(), errors.New("disk full"), 1},
		{"usage", context.Background(), usageError{errors.New("bad")}, 2},
		{"output container", context.Background(), fmt.Errorf("x: %w", video.ErrUnsupportedOutput), 2},
		{"some batch files failed", context.Background(), exitCodeError{exitFilesFailed}, 3},
		{"a face left (audit)", context.Background(), exitCodeError{exitLeak}, 4},
		{"batch options", context.Background(), fmt.Errorf("batch: %w", batch.ErrUsage), 2},
		{"Ctrl-C", byINT, stopped, 130},
		{"SIGTERM", byTERM, stopped, 143},
		{"SIGHUP", byHUP, stopped, 129},
		{"SIGTERM during the final flush", byTERM, nil, 143},
		{"a batch interrupted by SIGTERM", byTERM, resumable{stopped}, 143},
		{"cancelled without a signal", cancelled, stopped, 130},
		{"another error while interrupted", byTERM, errors.New("ffmpeg failed"), 143},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := exitCodeOf(tt.ctx, tt.err); got != tt.want {
				t.Errorf("exitCodeOf = %d, want %d", got, tt.want)
			}
		})
	}
}

func TestVersion(t *testing.T) {
	f, out, _ := testFactory(t, nil)
	if code := Execute(context.Background(), f, "version"); code != 0 {
		t.Fatalf("exit %d", code)
	}
	if !strings.HasPrefix(out.String(), "anonymize ") || !strings.Contains(out.String(), "OpenCV 4.") {
		t.Errorf("version output %q", out)
	}
}

func TestNewCmdBatchFlags(t *testing.T) {
	tests := []struct {
		name      string
		args      []string
		env       map[string]string
		wantShard [2]int
		wantJobs  int
		wantErr   string
	}{
		{name: "defaults", args: []string{"in", "out"}, wantShard: [2]int{0, 1}, wantJobs: defaultJobs},
		{name: "shard flags", args: []string{"--shard-index", "2", "--shard-count", "5", "--jobs", "3", "in", "out"}, wantShard: [2]int{2, 5}, wantJobs: 3},
		{name: "indexed job environment", args: []string{"in", "out"},
			env: map[string]string{"JOB_COMPLETION_INDEX": "3", "ANONYMIZE_SHARD_COUNT": "4"}, wantShard: [2]int{3, 4}, wantJobs: defaultJobs},
		{name: "flags win over the environment", args: []string{"--shard-index", "0", "in", "out"},
			env: map[string]string{"JOB_COMPLETION_INDEX": "3", "ANONYMIZE_SHARD_COUNT": "4"}, wantShard: [2]int{0, 4}, wantJobs: defaultJobs},
		{name: "flags need no environment", args: []string{"--shard-index", "1", "--shard-count", "2", "in", "out"},
			env: map[string]string{"ANONYMIZE_SHARD_COUNT": "4"}, wantShard: [2]int{1, 2}, wantJobs: defaultJobs},
		{name: "index out of range", args: []string{"--shard-index", "4", "--shard-count", "4", "in", "out"}, wantErr: "--shard-index 4, --shard-count 4"},
		{name: "no jobs", args: []string{"--jobs", "0", "in", "out"}, wantErr: "--jobs 0"},
		{name: "bad pipeline flag", args: []string{"--crf", "99", "in", "out"}, wantErr: "--crf 99"},
		{name: "bad telemetry", args: []string{"--telemetry", "kafka", "in", "out"}, wantErr: "kafka"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, _, _ := testFactory(t, tt.env)
			got := parseOptions(t, f, NewCmdBatch, tt.args, tt.wantErr)
			if got == nil {
				return
			}
			if got.ShardIndex != tt.wantShard[0] || got.ShardCount != tt.wantShard[1] || got.Jobs != tt.wantJobs {
				t.Errorf("shard %d/%d jobs %d, want %v jobs %d", got.ShardIndex, got.ShardCount, got.Jobs, tt.wantShard, tt.wantJobs)
			}
			if got.Settings["threshold"] != "0.7" || got.InDir != "in" || got.OutDir != "out" {
				t.Errorf("options %+v", got)
			}
		})
	}
}

// parseOptions runs the command newCmd builds, with its behaviour replaced
// by one that keeps the options, on args. It checks the error against
// wantErr and returns the options, or nil when parsing failed as wanted.
func parseOptions[O any](t *testing.T, f *Factory, newCmd func(*Factory, func(context.Context, *O) error) *cobra.Command, args []string, wantErr string) *O {
	t.Helper()
	var got *O
	cmd := newCmd(f, func(_ context.Context, o *O) error {
		got = o
		return nil
	})
	cmd.SetArgs(args)
	cmd.SetOut(&bytes.Buffer{})
	cmd.SetErr(&bytes.Buffer{})
	cmd.SilenceUsage = true
	err := cmd.Execute()
	if wantErr != "" {
		if err == nil || !strings.Contains(err.Error(), wantErr) {
			t.Fatalf("error = %v, want it to contain %q", err, wantErr)
		}
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return got
}
