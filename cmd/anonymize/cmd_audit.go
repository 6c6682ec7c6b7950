package main

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/anonymize-dev/anonymize/audit"
	"github.com/anonymize-dev/anonymize/inference"
	"github.com/anonymize-dev/anonymize/pipeline"
	"github.com/anonymize-dev/anonymize/video"
)

// AuditOptions are the inputs of `anonymize audit`.
type AuditOptions struct {
	IO        *IOStreams
	Env       pipeline.Env
	Videos    []string
	Device    inference.Device
	Locations Locations
	Every     int
	Detector  audit.Config
	JSON      bool
	Evidence  string
}

// NewCmdAudit builds `anonymize audit`.
func NewCmdAudit(f *Factory, runF func(context.Context, *AuditOptions) error) *cobra.Command {
	opts := &AuditOptions{IO: f.IO, Device: inference.Device{Kind: inference.DeviceAuto}, Every: 1, Detector: audit.DefaultConfig()}
	cmd := &cobra.Command{
		Use:   "audit VIDEO...",
		Short: "Look for faces left in videos, with a face detector independent of the masking models",
		Long: "Search every frame of each VIDEO (anonymize's output or any other tool's) for faces with\n" +
			"MediaPipe BlazeFace, a detector that shares nothing with DETR or TransPose, over the whole\n" +
			"frame and over overlapping tiles so that small faces are found too. A face found is a leak:\n" +
			"the table gives, per file, the frames audited, those with a leak, the leak rate and the\n" +
			"first leaks' times; --json gives every leak with its frame, time, box and score.\n\n" +
			"Leak evidence is itself personal data: face crops are written only to --evidence DIR.\n\n" +
			"Exit status: 0 no face found, 4 a face was found in some file, 1 the audit could not run,\n" +
			"2 usage error.",
		Example: "  anonymize audit out.mp4\n" +
			"  anonymize audit --json --every 10 anonymized/*.mp4 > audit.json",
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Videos = args
			if opts.Every < 1 {
				return usageError{fmt.Errorf("--every %d: must be at least 1", opts.Every)}
			}
			if err := opts.Detector.Validate(); err != nil {
				return usageError{err}
			}
			opts.Env = f.engineEnv(opts.Locations)
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return runAudit(cmd.Context(), opts)
		},
	}
	fs := cmd.Flags()
	fs.Var(&opts.Device, "device", "where the face detector runs: auto, cpu, cuda or cuda:N")
	fs.StringVar(&opts.Locations.ORTLib, "ort-lib", "", "path of libonnxruntime.so (default: $ANONYMIZE_ORT_LIB, lib/ next to the binary, then the system library path)")
	fs.StringVar(&opts.Locations.ModelsDir, "models-dir", "", "model folder (default: $ANONYMIZE_MODELS, ./models, then the user cache folder)")
	fs.StringVar(&opts.Locations.AuditModel, "audit-model", "", "BlazeFace .onnx file (default: "+audit.ModelFile+" in the model folder)")
	fs.IntVar(&opts.Every, "every", opts.Every, "audit one frame in N")
	fs.Float32Var(&opts.Detector.MinScore, "min-score", opts.Detector.MinScore, "least face score that counts as a face")
	fs.IntVar(&opts.Detector.Levels, "levels", opts.Detector.Levels, "levels of tiles searched besides the whole frame, each finding faces half as large at four times the cost (0-4)")
	fs.BoolVar(&opts.JSON, "json", false, "print the results as JSON, every leak included")
	fs.StringVar(&opts.Evidence, "evidence", "", "write a crop of each face found into this folder (personal data: off by default)")
	return cmd
}

// auditFile is one file's result, as printed.
type auditFile struct {
	Path string `json:"path"`
	audit.Result
	LeakRate float64 `json:"leak_rate"`
}

func runAudit(ctx context.Context, opts *AuditOptions) error {
	log, _ := newLogger(opts.IO, opts.JSON)
	dev := opts.Device
	path, err := audit.FindModel(opts.Env.AuditModel, opts.Env.Models.Dir, opts.Env.Models.Source)
	if err != nil {
		return err
	}
	rt, err := inference.Load(opts.Env.Library, log)
	if err != nil {
		return err
	}
	sess, err := rt.OpenSession(inference.SessionOptions{Role: "face detector", Path: path, Contract: audit.BlazeFace, Device: dev})
	if err != nil {
		return err
	}
	defer sess.Close()
	det, err := audit.New(sess, opts.Detector)
	if err != nil {
		return err
	}
	defer det.Close()

	var files []auditFile
	leaks := false
	for _, p := range opts.Videos {
		r, err := video.Open(ctx, p, log)
		if err != nil {
			return err
		}
		name := strings.TrimSuffix(filepath.Base(p), filepath.Ext(p))
		res, err := det.Video(ctx, r, audit.VideoOptions{Every: opts.Every, Evidence: opts.Evidence, Name: name})
		r.Close()
		if err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		if res.EvidenceErr != "" {
			log.Warn("some leak evidence was not written: " + res.EvidenceErr)
		}
		leaks = leaks || len(res.Leaks) > 0
		files = append(files, auditFile{Path: p, Result: res, LeakRate: res.LeakRate()})
	}
	if opts.JSON {
		enc := json.NewEncoder(opts.IO.Out)
		enc.SetIndent("", "  ")
		if err := enc.Encode(map[string]any{"files": files, "min_score": opts.Detector.MinScore, "levels": opts.Detector.Levels, "every": opts.Every}); err != nil {
			return err
		}
	} else if err := writeAuditTable(opts.IO, files); err != nil {
		return err
	}
	if leaks {
		return exitCodeError{exitLeak}
	}
	return nil
}

func writeAuditTable(streams *IOStreams, files []auditFile) error {
	tw := tabwriter.NewWriter(streams.Out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "FILE\tFRAMES\tAUDITED\tWITH A LEAK\tLEAK RATE\tFIRST LEAKS")
	for _, f := range files {
		var first []string
		last := -1
		for _, l := range f.Leaks {
			if l.Frame == last {
				continue
			}
			last = l.Frame
			if len(first) == 3 {
				first = append(first, "...")
				break
			}
			first = append(first, fmt.Sprintf("%s (frame %d, score %.2f)", l.Time.Round(time.Millisecond), l.Frame, l.Score))
		}
		if len(first) == 0 {
			first = []string{"-"}
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%.1f%%\t%s\n", f.Path, f.Frames, f.Audited, f.LeakFrames, 100*f.LeakRate, strings.Join(first, ", "))
	}
	return tw.Flush()
}
