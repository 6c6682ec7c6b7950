package main

import (
	"context"
	"log/slog"
	"strconv"

	"github.com/spf13/pflag"

	"github.com/anonymize-dev/anonymize/pipeline"
	"github.com/anonymize-dev/anonymize/telemetry/export"
)

// TelemetryOptions are the telemetry inputs shared by the commands that
// process video.
type TelemetryOptions struct {
	Sinks string // --telemetry
	// Config is the command's flags, for the W&B run's config.
	Config map[string]any
	// Getenv reads the exporters' environment (OTEL_*, WANDB_*).
	Getenv func(string) string
}

func addTelemetryFlags(fs *pflag.FlagSet, o *TelemetryOptions) {
	fs.StringVar(&o.Sinks, "telemetry", "", "where spans and metrics go (and log records, with otlp), comma-separated: otlp, wandb, console, none "+
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

// processing is what a command that processes video sets up: telemetry
// first (so a failure to load the models is still reported), then the
// engine that loads the models once.
type processing struct {
	tel    *export.Telemetry
	logs   *logHandler
	engine *pipeline.Engine
}

// startProcessing starts telemetry, from then on sending the command's log
// records over OTLP too when that is on, and loads the engine; close must
// be deferred with the command's final error, even when this fails.
func startProcessing(ctx context.Context, streams *IOStreams, env *pipeline.Env, logs *logHandler, cfg pipeline.Config,
	tel *TelemetryOptions, jobType string) (*processing, error) {
	p := &processing{logs: logs}
	var err error
	if p.tel, err = startTelemetry(ctx, streams, env.Log, tel.Getenv, tel, jobType); err != nil {
		return p, err
	}
	logs.attachOTLP(p.tel.LogHandler())
	env.GPUMemory = p.tel.GPUMemory()
	if p.engine, err = pipeline.NewEngine(cfg, *env); err != nil {
		return p, err
	}
	p.tel.SetRunConfig(p.engine.RunConfig())
	return p, nil
}

// close releases the models, then flushes telemetry (bounded), recording
// the exit status the command's error leads to and whether it was
// interrupted. Log records stop going over OTLP first: the flush is their
// last.
func (p *processing) close(ctx context.Context, err error) {
	if p.engine != nil {
		p.engine.Close()
		if p.engine.UsesGPU() && p.tel.GPUProcessUnseen() {
			slog.New(p.logs).Warn("per-process GPU memory (anonymize.process.gpu.memory.usage) not recorded: NVML names GPU " +
				"processes by host PID, and this process, in a PID namespace of its own, was never among them; run the " +
				"container with pid: host (Compose) or hostPID: true (Kubernetes) to record it")
		}
	}
	p.logs.detach()
	p.tel.Shutdown(ctx, exitCodeOf(ctx, err), wasInterrupted(ctx, err))
}
