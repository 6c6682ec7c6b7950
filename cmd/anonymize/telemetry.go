package main

import (
	"context"
	"errors"
	"log/slog"
	"strconv"

	"github.com/spf13/pflag"

	"github.com/anonymize-dev/anonymize/telemetry/export"
)

// TelemetryOptions are the telemetry inputs shared by the commands that
// process video.
type TelemetryOptions struct {
	Sinks string // --telemetry
	// Config is the command's flags, for the W&B run's config.
	Config map[string]any
}

func addTelemetryFlags(fs *pflag.FlagSet, o *TelemetryOptions) {
	fs.StringVar(&o.Sinks, "telemetry", "", "where spans and metrics go, comma-separated: otlp, wandb, console, none "+
		"(default: otlp when OTEL_EXPORTER_OTLP_ENDPOINT is set, else none); see README for the environment")
}

// validateTelemetry checks --telemetry while flags are parsed, so a typo is
// a usage error before any work.
func validateTelemetry(o *TelemetryOptions, getenv func(string) string, fs *pflag.FlagSet) error {
	if _, err := export.ParseSinks(o.Sinks, getenv); err != nil {
		return usageError{err}
	}
	o.Config = flagConfig(fs)
	return nil
}

// flagConfig records every flag with its typed value: the W&B run's config
// then says exactly how the run was made.
func flagConfig(fs *pflag.FlagSet) map[string]any {
	cfg := map[string]any{}
	fs.VisitAll(func(f *pflag.Flag) {
		if f.Name == "help" {
			return
		}
		v := f.Value.String()
		switch f.Value.Type() {
		case "int":
			if n, err := strconv.Atoi(v); err == nil {
				cfg[f.Name] = n
				return
			}
		case "float64":
			if x, err := strconv.ParseFloat(v, 64); err == nil {
				cfg[f.Name] = x
				return
			}
		case "bool":
			if b, err := strconv.ParseBool(v); err == nil {
				cfg[f.Name] = b
				return
			}
		}
		cfg[f.Name] = v
	})
	return cfg
}

func startTelemetry(ctx context.Context, streams *IOStreams, log *slog.Logger, getenv func(string) string,
	o *TelemetryOptions, jobType string) (*export.Telemetry, error) {
	sinks, err := export.ParseSinks(o.Sinks, getenv)
	if err != nil {
		return nil, usageError{err}
	}
	return export.Setup(ctx, export.Options{
		Sinks:          sinks,
		ServiceVersion: buildVersion(),
		Getenv:         getenv,
		Log:            log,
		Console:        streams.ErrOut,
		WandB:          export.WandBOptions{Config: o.Config, JobType: jobType},
	})
}

// exitCodeOf is the exit status a command's error leads to, for the W&B
// run's record.
func exitCodeOf(ctx context.Context, err error) int {
	var code exitCodeError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &code):
		return code.code
	case ctx.Err() != nil && errors.Is(err, context.Canceled):
		return exitInterrupted
	case errors.As(err, new(usageError)):
		return exitUsage
	}
	return exitError
}
