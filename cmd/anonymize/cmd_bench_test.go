package main

import (
	"reflect"
	"testing"

	"github.com/anonymize-dev/anonymize/bench"
	"github.com/anonymize-dev/anonymize/inference"
)

func TestNewCmdBenchFlags(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		want    func(*bench.Config)
		wantErr string
	}{
		{name: "defaults", args: nil, want: func(*bench.Config) {}},
		{
			name: "generated clip",
			args: []string{"--size", "1280x720", "--frames", "100", "--runs", "3", "--audit", "off", "--work-dir", "w"},
			want: func(c *bench.Config) {
				c.Width, c.Height, c.Frames, c.Runs, c.WorkDir = 1280, 720, 100, 3, "w"
				c.Pipeline.Audit = "off"
			},
		},
		{
			name: "real models on a clip",
			args: []string{"--clip", "in.mp4", "--device", "cuda", "--detector-model", "d.onnx", "--pose-model", "p.onnx"},
			want: func(c *bench.Config) {
				c.Clip = "in.mp4"
				c.Pipeline.Device = inference.Device{Kind: inference.DeviceCUDA}
				c.Pipeline.DetectorModel, c.Pipeline.PoseModel = "d.onnx", "p.onnx"
			},
		},
		{name: "size without x", args: []string{"--size", "1920"}, wantErr: "want WIDTHxHEIGHT"},
		{name: "odd size", args: []string{"--size", "641x360"}, wantErr: "--size 641x360: must be even"},
		{name: "small size", args: []string{"--size", "64x64"}, wantErr: "--size 64x64: frame size 64x64 is too small"},
		{name: "no frames", args: []string{"--frames", "0"}, wantErr: "--frames 0"},
		{name: "no runs", args: []string{"--runs", "0"}, wantErr: "--runs 0"},
		{name: "frames with a clip", args: []string{"--clip", "a.mp4", "--frames", "9"}, wantErr: "with --clip the whole clip"},
		{name: "size with a clip", args: []string{"--clip", "a.mp4", "--size", "64x64"}, wantErr: "--size sets the size of the generated clip"},
		{name: "one model only", args: []string{"--detector-model", "d.onnx"}, wantErr: "go together"},
		{name: "pipeline setting checked", args: []string{"--crf", "70"}, wantErr: "--crf 70"},
		{name: "arguments", args: []string{"in.mp4"}, wantErr: "unknown command"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, _, _ := testFactory(t, nil)
			got := parseOptions(t, f, NewCmdBench, tt.args, tt.wantErr)
			if got == nil {
				return
			}
			want := bench.DefaultConfig()
			tt.want(&want)
			got.Config.Progress = nil
			if !reflect.DeepEqual(got.Config, want) {
				t.Errorf("config\n got %+v\nwant %+v", got.Config, want)
			}
		})
	}
}
