package export

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"

	"go.opentelemetry.io/contrib/bridges/otelslog"
	"go.opentelemetry.io/contrib/exporters/autoexport"
	sdklog "go.opentelemetry.io/otel/sdk/log"
	"go.opentelemetry.io/otel/sdk/resource"

	"github.com/anonymize-dev/anonymize/telemetry"
)

// startLogs sets up the OTLP logs: an exporter chosen by OTEL_LOGS_EXPORTER
// (none turns them off), behind a batch processor, and the slog handler
// the command's logger sends its records to. Nothing is set when logs are
// off.
func (t *Telemetry) startLogs(ctx context.Context, res *resource.Resource) error {
	exp, err := autoexport.NewLogExporter(ctx)
	if err != nil {
		return fmt.Errorf("telemetry: OTLP logs: %w", err)
	}
	if autoexport.IsNoneLogExporter(exp) {
		return nil
	}
	t.logsEmitted = &logCounter{}
	t.logSink = &countingLogExporter{Exporter: exp}
	t.lp = sdklog.NewLoggerProvider(
		sdklog.WithResource(res),
		sdklog.WithProcessor(t.logsEmitted),
		sdklog.WithProcessor(sdklog.NewBatchProcessor(t.logSink)),
	)
	t.logs = otelslog.NewHandler(telemetry.ScopeName, otelslog.WithLoggerProvider(t.lp),
		otelslog.WithVersion(t.opts.ServiceVersion))
	return nil
}

// LogHandler is the handler that sends log records over OTLP (the
// OpenTelemetry slog bridge), or nil when OTLP logs are off. A record
// takes its trace and span from the context it is handled with.
func (t *Telemetry) LogHandler() slog.Handler {
	if t == nil {
		return nil
	}
	return t.logs
}

// logCounter counts every record the logger provider emits, the baseline
// against which the exporter's count shows what was dropped, as
// spanCounter does for spans. It comes before the batch processor.
type logCounter struct{ emitted atomic.Int64 }

func (c *logCounter) Enabled(context.Context, sdklog.EnabledParameters) bool { return true }
func (c *logCounter) OnEmit(context.Context, *sdklog.Record) error {
	c.emitted.Add(1)
	return nil
}
func (c *logCounter) Shutdown(context.Context) error   { return nil }
func (c *logCounter) ForceFlush(context.Context) error { return nil }

// countingLogExporter counts the records its wrapped exporter accepted and
// keeps the first error, as countingExporter does for spans.
type countingLogExporter struct {
	sdklog.Exporter
	delivered
}

func (e *countingLogExporter) Export(ctx context.Context, records []sdklog.Record) error {
	e.add(len(records), e.Exporter.Export(ctx, records))
	return nil
}
