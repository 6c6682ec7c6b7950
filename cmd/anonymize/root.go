package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/spf13/cobra"

	"github.com/anonymize-dev/anonymize/video"
)

// Exit statuses. A signal gives 128 plus its number (interruption).
const (
	exitOK          = 0
	exitError       = 1
	exitUsage       = 2
	exitInterrupted = 130 // cancelled without a signal: as if by Ctrl-C
)

// usageError marks a mistake in the command line (exit status 2).
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// resumable marks the error of a command interrupted midway that a re-run
// continues (batch): the interruption message says so.
type resumable struct{ err error }

func (e resumable) Error() string { return e.err.Error() }
func (e resumable) Unwrap() error { return e.err }

// exitCodeError carries an exit status without a message of its own (the
// command already printed what went wrong, as doctor does).
type exitCodeError struct{ code int }

func (e exitCodeError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

// NewCmdRoot builds the command tree.
func NewCmdRoot(f *Factory) *cobra.Command {
	root := &cobra.Command{
		Use:   "anonymize",
		Short: "Black out the faces of people in videos",
		Long: "anonymize detects every person in a video (DETR), estimates their keypoints (TransPose)\n" +
			"and blacks out a disk over each face, keeping the video's size, timing and audio.\n" +
			"Models run on ONNX Runtime, on a CUDA GPU when one is usable and on the CPU otherwise.",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(f.IO.Out)
	root.SetErr(f.IO.ErrOut)
	root.SetIn(f.IO.In)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	root.AddCommand(
		NewCmdVideo(f, nil),
		NewCmdBatch(f, nil),
		NewCmdAudit(f, nil),
		NewCmdBench(f, nil),
		NewCmdReport(f),
		NewCmdDoctor(f, nil),
		NewCmdModels(f),
		NewCmdWandB(f),
		NewCmdVersion(f),
	)
	return root
}

// Execute runs the command line and returns the exit status. Errors are
// printed as one line: what went wrong and what to do, never a stack trace.
func Execute(ctx context.Context, f *Factory, args ...string) int {
	root := NewCmdRoot(f)
	if args != nil {
		root.SetArgs(args)
	}
	err := root.ExecuteContext(ctx)
	code := exitCodeOf(ctx, err)
	var sig interruption
	interrupted := errors.As(context.Cause(ctx), &sig)
	switch {
	case err == nil && interrupted:
		// The work was done when the signal came, during the last flush.
		fmt.Fprintf(f.IO.ErrOut, "anonymize: %s received at the end; the output is complete, telemetry may be incomplete\n", sig.name())
	case err == nil || errors.As(err, new(exitCodeError)):
		// Nothing to say, or the command already said it.
	case interrupted || code == exitInterrupted:
		what := "interrupted"
		if interrupted {
			what += " by " + sig.name()
		}
		msg := "anonymize: " + what + "; unfinished output was removed"
		if errors.As(err, new(resumable)) {
			msg += "; finished files are kept: run the same command again to resume"
		}
		fmt.Fprintln(f.IO.ErrOut, msg)
	default:
		msg := strings.TrimSpace(err.Error())
		fmt.Fprintf(f.IO.ErrOut, "anonymize: error: %s\n", strings.ReplaceAll(msg, "\n", "; "))
		if code == exitUsage {
			fmt.Fprintln(f.IO.ErrOut, "Run 'anonymize --help' for usage.")
		}
	}
	return code
}

// exitCodeOf is the exit status a command's error leads to; the W&B run
// records it too.
func exitCodeOf(ctx context.Context, err error) int {
	var code exitCodeError
	var sig interruption
	interrupted := errors.As(context.Cause(ctx), &sig)
	switch {
	case err == nil && interrupted:
		return sig.exitCode()
	case err == nil:
		return exitOK
	case errors.As(err, &code):
		return code.code
	case ctx.Err() != nil && interrupted:
		return sig.exitCode()
	case ctx.Err() != nil && errors.Is(err, context.Canceled):
		return exitInterrupted
	case errors.As(err, new(usageError)) || isCobraUsage(err) || errors.Is(err, video.ErrUnsupportedOutput):
		return exitUsage
	}
	return exitError
}

// isCobraUsage recognises the argument-count errors cobra builds itself.
func isCobraUsage(err error) bool {
	m := err.Error()
	return strings.HasPrefix(m, "accepts ") || strings.HasPrefix(m, "unknown command") ||
		strings.HasPrefix(m, "requires at least") || strings.HasPrefix(m, "unknown flag") ||
		strings.HasPrefix(m, "unknown shorthand flag")
}

// newLogger returns the logger commands print through: informational
// lines unless quiet, warnings and errors always.
func newLogger(streams *IOStreams, quiet bool) (*slog.Logger, *lineHandler) {
	level := slog.LevelInfo
	if quiet {
		level = slog.LevelWarn
	}
	h := newLineHandler(streams.ErrOut, level)
	return slog.New(h), h
}
