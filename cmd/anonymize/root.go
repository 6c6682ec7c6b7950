package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/spf13/cobra"

	"github.com/anonymize-dev/anonymize/batch"
	"github.com/anonymize-dev/anonymize/video"
)

// Exit statuses, all decided here (exitCodeOf) from the errors commands
// and libraries return. A signal gives 128 plus its number (interruption).
const (
	exitOK          = 0
	exitError       = 1
	exitUsage       = 2   // the command line, or what it asks, is wrong
	exitFilesFailed = 3   // batch: it ran, but some files failed (see the report)
	exitLeak        = 4   // audit: a face was found
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
	root.PersistentFlags().Var(&f.IO.LogFormat, "log-format", "how log records are written to stderr: text (a line each, for people) "+
		"or json (an object a line with time, level, msg, attributes and the trace_id and span_id of the run or frame)")
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
	// The last words: a line for people, or with --log-format json a
	// record like the others, so stderr stays JSON throughout.
	say := func(level slog.Level, text, msg string, attrs ...any) {
		if f.IO.LogFormat == logJSON {
			log, _ := newLogger(f.IO, false)
			log.Log(ctx, level, msg, append(attrs, "exit_code", code)...)
			return
		}
		fmt.Fprintln(f.IO.ErrOut, text)
	}
	switch {
	case err == nil && interrupted:
		// The work was done when the signal came, during the last flush.
		say(slog.LevelWarn, fmt.Sprintf("anonymize: %s received at the end; the output is complete, telemetry may be incomplete", sig.name()),
			"signal received at the end; the output is complete, telemetry may be incomplete", "signal", sig.name())
	case err == nil || errors.As(err, new(exitCodeError)):
		// Nothing to say, or the command already said it.
	case interrupted || code == exitInterrupted:
		what := "interrupted"
		if interrupted {
			what += " by " + sig.name()
		}
		msg := what + "; unfinished output was removed"
		if errors.As(err, new(resumable)) {
			msg += "; finished files are kept: run the same command again to resume"
		}
		say(slog.LevelWarn, "anonymize: "+msg, msg)
	default:
		msg := strings.ReplaceAll(strings.TrimSpace(err.Error()), "\n", "; ")
		text := "anonymize: error: " + msg
		if code == exitUsage {
			text += "\nRun 'anonymize --help' for usage."
		}
		say(slog.LevelError, text, msg)
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
	case errors.As(err, new(usageError)) || isCobraUsage(err) || errors.Is(err, video.ErrUnsupportedOutput) ||
		errors.Is(err, batch.ErrUsage):
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

// wasInterrupted reports whether a command that ended with err was
// stopped rather than failed: by a signal, or by its context being
// cancelled (exit status 130), as Execute tells the user.
func wasInterrupted(ctx context.Context, err error) bool {
	var sig interruption
	return errors.As(context.Cause(ctx), &sig) || exitCodeOf(ctx, err) == exitInterrupted
}
