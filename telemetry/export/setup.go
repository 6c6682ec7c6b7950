package export

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/google/uuid"
	"go.opentelemetry.io/contrib/exporters/autoexport"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/stdout/stdoutmetric"
	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	sdklog "go.opentelemetry.io/otel/sdk/log"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"

	"github.com/anonymize-dev/anonymize/telemetry"
	"github.com/anonymize-dev/anonymize/telemetry/gpu"
)

// Options configure Setup.
type Options struct {
	Sinks          []Sink
	ServiceVersion string
	// Getenv reads W&B's settings; the OTLP exporters and the resource
	// read the process environment themselves (OTEL_*), as the
	// OpenTelemetry SDK does everywhere.
	Getenv func(string) string
	Log    *slog.Logger
	// Console receives the console sink's output (stderr in the command).
	Console io.Writer
	// NVML is the GPU library; nil uses the real one.
	NVML nvml.Interface
	// WandB configures the Weights & Biases run.
	WandB WandBOptions
	// ShutdownTimeout bounds the final flush of every sink (default 10 s).
	ShutdownTimeout time.Duration
	// SpanBatchTimeout is how long spans wait to be exported in a batch
	// (default 1 s, so W&B rows and traces show up while a run goes on).
	SpanBatchTimeout time.Duration
}

// Telemetry is the installed SDK. The zero value (no sinks) does nothing.
type Telemetry struct {
	opts  Options
	log   *slog.Logger
	tp    *sdktrace.TracerProvider
	mp    *sdkmetric.MeterProvider
	gpu   *gpu.Collector
	wandb wandbSink
	// The W&B span processor and metric reader, flushed on their own at
	// shutdown so a slow OTLP endpoint cannot eat W&B's time.
	wandbSpans  sdktrace.SpanProcessor
	wandbReader *sdkmetric.PeriodicReader
	spans       *spanCounter
	sinks       []*countingExporter
	errs        *errorCounter
	runs        *runCounter
	// OTLP logs, when on: the provider, the handler the command's logger
	// sends records to, and the counts that show what was lost.
	lp          *sdklog.LoggerProvider
	logs        slog.Handler
	logsEmitted *logCounter
	logSink     *countingLogExporter
}

// Setup installs the OpenTelemetry SDK as the global tracer and meter
// providers, with one exporter per sink, and counts the run as started
// (anonymize.runs). Exporters run on their own goroutines behind bounded
// queues, so a sink that is slow or down drops telemetry instead of
// slowing the video job. With the OTLP sink, log records go there too,
// through LogHandler.
func Setup(ctx context.Context, o Options) (*Telemetry, error) {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Getenv == nil {
		o.Getenv = os.Getenv
	}
	if o.Console == nil {
		o.Console = os.Stderr
	}
	if o.ShutdownTimeout <= 0 {
		o.ShutdownTimeout = 10 * time.Second
	}
	if o.SpanBatchTimeout <= 0 {
		o.SpanBatchTimeout = time.Second
	}
	t := &Telemetry{opts: o, log: o.Log}
	if len(o.Sinks) == 0 {
		return t, nil
	}
	ok := false
	defer func() {
		if !ok {
			t.abort()
		}
	}()

	var err error
	t.gpu, err = gpu.Open(o.NVML)
	if err != nil {
		t.gpu = nil
		if errors.Is(err, gpu.ErrUnavailable) {
			o.Log.Info("GPU metrics off", "reason", err.Error())
		} else {
			o.Log.Warn("GPU metrics off", "error", err.Error())
		}
	}

	res, err := t.resource(ctx)
	if err != nil {
		return nil, err
	}

	if Has(o.Sinks, SinkWandB) {
		// nil when WANDB_MODE=disabled.
		if t.wandb, err = startWandB(o, t.gpu); err != nil {
			return nil, err
		}
	}

	// Metrics first: the span processor that derives stage durations
	// records into the meter provider.
	var readers []sdkmetric.Reader
	if Has(o.Sinks, SinkOTLP) {
		r, err := autoexport.NewMetricReader(ctx)
		if err != nil {
			return nil, fmt.Errorf("telemetry: OTLP metrics: %w", err)
		}
		if !autoexport.IsNoneMetricReader(r) {
			readers = append(readers, r)
		}
	}
	if Has(o.Sinks, SinkConsole) {
		exp, err := stdoutmetric.New(stdoutmetric.WithWriter(o.Console))
		if err != nil {
			return nil, fmt.Errorf("telemetry: console metrics: %w", err)
		}
		readers = append(readers, sdkmetric.NewPeriodicReader(exp))
	}
	if t.wandb != nil {
		t.wandbReader = sdkmetric.NewPeriodicReader(t.wandb.MetricExporter(), sdkmetric.WithInterval(wandbMetricInterval(o.Getenv)))
		readers = append(readers, t.wandbReader)
	}
	mopts := []sdkmetric.Option{sdkmetric.WithResource(res)}
	for _, r := range readers {
		mopts = append(mopts, sdkmetric.WithReader(r))
	}
	t.mp = sdkmetric.NewMeterProvider(mopts...)

	stages, err := newStageMetrics(t.mp.Meter(telemetry.ScopeName))
	if err != nil {
		return nil, fmt.Errorf("telemetry: %w", err)
	}
	t.spans = &spanCounter{}
	topts := []sdktrace.TracerProviderOption{
		sdktrace.WithResource(res),
		sdktrace.WithSampler(sdktrace.AlwaysSample()),
		sdktrace.WithSpanProcessor(t.spans),
		sdktrace.WithSpanProcessor(stages),
	}
	addSpans := func(sink Sink, exp sdktrace.SpanExporter) sdktrace.SpanProcessor {
		ce := &countingExporter{SpanExporter: exp, sink: sink}
		t.sinks = append(t.sinks, ce)
		bsp := sdktrace.NewBatchSpanProcessor(ce, sdktrace.WithBatchTimeout(o.SpanBatchTimeout))
		topts = append(topts, sdktrace.WithSpanProcessor(bsp))
		return bsp
	}
	if Has(o.Sinks, SinkOTLP) {
		exp, err := autoexport.NewSpanExporter(ctx)
		if err != nil {
			return nil, fmt.Errorf("telemetry: OTLP traces: %w", err)
		}
		if !autoexport.IsNoneSpanExporter(exp) {
			addSpans(SinkOTLP, exp)
		}
	}
	if Has(o.Sinks, SinkConsole) {
		exp, err := stdouttrace.New(stdouttrace.WithWriter(o.Console))
		if err != nil {
			return nil, fmt.Errorf("telemetry: console traces: %w", err)
		}
		addSpans(SinkConsole, exp)
	}
	if t.wandb != nil {
		t.wandbSpans = addSpans(SinkWandB, t.wandb.SpanExporter())
	}
	t.tp = sdktrace.NewTracerProvider(topts...)

	if Has(o.Sinks, SinkOTLP) {
		if err := t.startLogs(ctx, res); err != nil {
			return nil, err
		}
	}

	if t.gpu != nil {
		if err := t.gpu.Register(t.mp.Meter(telemetry.ScopeName + "/gpu")); err != nil {
			return nil, fmt.Errorf("telemetry: %w", err)
		}
	}

	if t.runs, err = newRunCounter(t.mp.Meter(telemetry.ScopeName)); err != nil {
		return nil, fmt.Errorf("telemetry: %w", err)
	}

	t.errs = &errorCounter{}
	otel.SetErrorHandler(t.errs)
	otel.SetTracerProvider(t.tp)
	otel.SetMeterProvider(t.mp)
	t.runs.start(ctx)
	ok = true
	return t, nil
}

// resource describes this process: service name, version and a unique
// instance id (overridable through OTEL_SERVICE_NAME and
// OTEL_RESOURCE_ATTRIBUTES, which win), host, process and GPU model.
func (t *Telemetry) resource(ctx context.Context) (*resource.Resource, error) {
	attrs := []attribute.KeyValue{
		semconv.ServiceName("anonymize"),
		semconv.ServiceVersion(t.opts.ServiceVersion),
		// Each process its own identity: without one, the Collector's
		// Prometheus exporter gives every process the same series and the
		// last to write wins (the pods of a sharded batch, runs one after
		// another); with it, each gets an instance label and target_info.
		semconv.ServiceInstanceID(uuid.NewString()),
	}
	if t.gpu != nil {
		attrs = append(attrs,
			attribute.String("host.gpu.model", t.gpu.Model()),
			attribute.Int("host.gpu.count", len(t.gpu.Devices())))
	}
	res, err := resource.New(ctx,
		resource.WithAttributes(attrs...),
		resource.WithHost(),
		resource.WithProcessPID(),
		resource.WithProcessExecutableName(),
		resource.WithProcessRuntimeName(),
		resource.WithProcessRuntimeVersion(),
		resource.WithTelemetrySDK(),
		resource.WithFromEnv(),
	)
	if err != nil && res == nil {
		return nil, fmt.Errorf("telemetry: resource: %w", err)
	}
	// A partial resource (one detector failed) is still worth sending.
	return res, nil
}

// GPUMemory samples the GPU memory this process uses; nil without NVML.
func (t *Telemetry) GPUMemory() func() (int64, bool) {
	if t == nil || t.gpu == nil || t.tp == nil {
		return nil
	}
	return t.gpu.ProcessMemory
}

// GPUProcessUnseen reports that NVML listed processes on the GPUs but never
// this one, as in a container with a PID namespace of its own: the
// per-process GPU memory was then not recorded. Meaningful after a run
// that used the GPU only; see gpu.Collector.PIDNamespaceMismatch.
func (t *Telemetry) GPUProcessUnseen() bool {
	return t != nil && t.gpu != nil && t.gpu.PIDNamespaceMismatch()
}

// SetRunConfig adds what is only known once the models are loaded (their
// sha256s, the execution provider) to the W&B run's config.
func (t *Telemetry) SetRunConfig(cfg map[string]any) {
	if t != nil && t.wandb != nil {
		t.wandb.SetConfig(cfg)
	}
}

// SetSummary adds values to the W&B run's summary (a batch's per-file
// results, say).
func (t *Telemetry) SetSummary(values map[string]any) {
	if t != nil && t.wandb != nil {
		t.wandb.SetSummary(values)
	}
}

// Shutdown counts the run under how it ended (anonymize.runs), flushes
// every sink within the shutdown timeout and logs one warning when
// telemetry was lost. exitCode is the command's, for W&B and the count;
// interrupted says the command was stopped (a signal, a cancelled
// context) rather than failed. Stop sending records to LogHandler before:
// the logs are flushed here too.
// W&B and the OTLP/console exporters flush concurrently, so a collector
// that is down cannot take the time W&B needs to finish its run (which is
// local first, so nothing is lost there, only uploaded later).
func (t *Telemetry) Shutdown(ctx context.Context, exitCode int, interrupted bool) {
	if t == nil || t.tp == nil {
		return
	}
	// A run cut short still gets its telemetry out (bounded); but once the
	// flush has begun, being told to stop (SIGTERM) ends it at once.
	base := ctx
	if ctx.Err() != nil {
		base = context.WithoutCancel(ctx)
	}
	ctx, cancel := context.WithTimeout(base, t.opts.ShutdownTimeout)
	defer cancel()
	// Before any reader stops: the final collection of each exports it.
	t.runs.end(ctx, exitCode, interrupted)
	t.errs.closing.Store(true)

	var wandbProblem string
	done := make(chan struct{})
	go func() {
		defer close(done)
		if t.wandb == nil {
			return
		}
		// Deliver the last frames' spans and a final metric export to the
		// run, then finish it.
		// Shut down (not just flush) the reader: the meter provider's own
		// shutdown would otherwise export once more, after the run ended.
		t.wandbSpans.Shutdown(ctx)
		t.wandbReader.Shutdown(ctx)
		wandbProblem = t.wandb.Finish(ctx, exitCode)
	}()

	var problems []string
	// A failed trace or log flush shows below as spans or records not
	// sent.
	t.tp.Shutdown(ctx)
	if t.lp != nil {
		t.lp.Shutdown(ctx)
	}
	if err := withoutReaderShutdown(t.mp.Shutdown(ctx)); err != nil {
		problems = append(problems, "final metrics export not delivered ("+firstLine(err)+")")
	}
	if t.gpu != nil {
		t.gpu.Close()
	}
	<-done

	for _, s := range t.sinks {
		if p := s.shortfall(t.spans.ended.Load(), "spans", s.sink); p != "" {
			problems = append(problems, p)
		}
	}
	if t.lp != nil {
		if p := t.logSink.shortfall(t.logsEmitted.emitted.Load(), "log records", SinkOTLP); p != "" {
			problems = append(problems, p)
		}
	}
	if n := t.errs.n.Load(); n > 0 {
		problems = append(problems, fmt.Sprintf("%d metric export errors (first: %s)", n, firstLine(t.errs.first.get())))
	}
	if wandbProblem != "" {
		problems = append(problems, wandbProblem)
	}
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(error) {}))
	if len(problems) > 0 {
		t.log.Warn("telemetry incomplete: " + strings.Join(problems, "; "))
	}
}

// abort undoes a partial Setup.
func (t *Telemetry) abort() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if t.tp != nil {
		t.tp.Shutdown(ctx)
	}
	if t.lp != nil {
		t.lp.Shutdown(ctx)
	}
	if t.mp != nil {
		t.mp.Shutdown(ctx)
	}
	if t.gpu != nil {
		t.gpu.Close()
	}
	if t.wandb != nil {
		t.wandb.Finish(ctx, 1)
	}
}

func firstLine(err error) string {
	if err == nil {
		return ""
	}
	s := strings.TrimSpace(err.Error())
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return s
}

// withoutReaderShutdown drops the "already shut down" of the W&B reader,
// which Shutdown stops first on purpose, from the meter provider's errors.
func withoutReaderShutdown(err error) error {
	if err == nil {
		return nil
	}
	if joined, ok := err.(interface{ Unwrap() []error }); ok {
		var kept []error
		for _, e := range joined.Unwrap() {
			if e != nil && !errors.Is(e, sdkmetric.ErrReaderShutdown) {
				kept = append(kept, e)
			}
		}
		return errors.Join(kept...)
	}
	if errors.Is(err, sdkmetric.ErrReaderShutdown) {
		return nil
	}
	return err
}
