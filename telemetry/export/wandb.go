package export

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/anonymize-dev/anonymize/telemetry/gpu"
	"github.com/anonymize-dev/anonymize/telemetry/wandb"
)

// WandBOptions describe the Weights & Biases run of a command.
type WandBOptions struct {
	// Config is the run's config: the command's flags (model sha256s are
	// added by SetRunConfig once known).
	Config map[string]any
	// JobType tells runs of different commands apart ("video", "batch").
	JobType string
}

// wandbSink is what Setup needs from the W&B run.
type wandbSink interface {
	SpanExporter() sdktrace.SpanExporter
	MetricExporter() sdkmetric.Exporter
	SetConfig(map[string]any)
	SetSummary(map[string]any)
	// Finish flushes and uploads within ctx; it returns "" when all went
	// well, else one line saying what is missing and how to recover it.
	Finish(ctx context.Context, exitCode int) string
}

// wandbMetricInterval is how often GPU metrics land in W&B's system
// metrics: OTEL_METRIC_EXPORT_INTERVAL when set, else W&B's own default
// cadence is too coarse for a short clip, so every 2 seconds.
func wandbMetricInterval(getenv func(string) string) time.Duration {
	if v := getenv("OTEL_METRIC_EXPORT_INTERVAL"); v != "" {
		if ms, err := strconv.ParseInt(v, 10, 64); err == nil && ms > 0 {
			return time.Duration(ms) * time.Millisecond
		}
	}
	return 2 * time.Second
}

// wandbRun adapts a W&B run to what Setup needs.
type wandbRun struct {
	run *wandb.Run
	log *slog.Logger
}

func (w *wandbRun) SpanExporter() sdktrace.SpanExporter { return w.run.SpanExporter() }
func (w *wandbRun) MetricExporter() sdkmetric.Exporter  { return w.run.MetricExporter() }
func (w *wandbRun) SetConfig(cfg map[string]any)        { w.run.SetConfig(cfg) }
func (w *wandbRun) SetSummary(values map[string]any)    { w.run.SetSummary(values) }

func (w *wandbRun) Finish(ctx context.Context, exitCode int) string {
	res := w.run.Finish(ctx, exitCode)
	var problems []string
	if n := res.Dropped.Total(); n > 0 {
		problems = append(problems, fmt.Sprintf("%d W&B rows or events dropped", n))
	}
	if res.LocalErr != nil {
		problems = append(problems, "W&B run folder: "+firstLine(res.LocalErr))
	}
	switch {
	case res.Mode == wandb.ModeOffline:
		// Offline is a choice, not a loss: say where the run is.
		w.log.Info(res.Message)
	case res.Completed:
		if res.RunURL != "" {
			w.log.Info("W&B run uploaded", "url", res.RunURL)
		}
	case res.Message != "":
		problems = append(problems, res.Message)
	}
	return strings.Join(problems, "; ")
}

// startWandB starts the W&B run, or returns nil when WANDB_MODE=disabled.
func startWandB(o Options, g *gpu.Collector) (wandbSink, error) {
	settings, err := wandb.SettingsFromEnv(o.Getenv)
	if err != nil {
		return nil, fmt.Errorf("telemetry: W&B: %w", err)
	}
	if settings.Mode == wandb.ModeDisabled {
		o.Log.Info("W&B off: WANDB_MODE=disabled")
		return nil, nil
	}
	opts := wandb.Options{
		Settings: settings,
		Config:   o.WandB.Config,
		Logger:   o.Log,
		Program:  "anonymize",
		JobType:  o.WandB.JobType,
	}
	if g != nil {
		opts.GPUIndex = g.Index
	}
	run, err := wandb.Start(opts)
	if err != nil {
		return nil, fmt.Errorf("telemetry: W&B: %w", err)
	}
	return &wandbRun{run: run, log: o.Log}, nil
}
