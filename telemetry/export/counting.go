package export

import (
	"context"
	"sync"
	"sync/atomic"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// spanCounter counts every span that ends, the baseline against which each
// sink's exported count shows what was dropped (a full queue or a failed
// export: the SDK drops rather than block the pipeline).
type spanCounter struct{ ended atomic.Int64 }

func (c *spanCounter) OnStart(context.Context, sdktrace.ReadWriteSpan) {}
func (c *spanCounter) OnEnd(sdktrace.ReadOnlySpan)                     { c.ended.Add(1) }
func (c *spanCounter) Shutdown(context.Context) error                  { return nil }
func (c *spanCounter) ForceFlush(context.Context) error                { return nil }

// countingExporter counts the spans its wrapped exporter accepted, and
// keeps the first error to explain a shortfall. It reports failures only
// that way: the batch processor would otherwise pass them to the global
// error handler too, which counts metric export failures.
type countingExporter struct {
	sdktrace.SpanExporter
	sink     Sink
	exported atomic.Int64

	mu       sync.Mutex
	firstErr error
}

func (e *countingExporter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	if err := e.SpanExporter.ExportSpans(ctx, spans); err != nil {
		e.mu.Lock()
		if e.firstErr == nil {
			e.firstErr = err
		}
		e.mu.Unlock()
		return nil
	}
	e.exported.Add(int64(len(spans)))
	return nil
}

func (e *countingExporter) err() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.firstErr
}

// errorCounter is the global OpenTelemetry error handler: the SDK reports
// failed metric exports and other trouble there. Errors are counted, not
// printed, so a collector that is down does not flood the terminal; the
// first one explains the count at the end.
type errorCounter struct {
	n     atomic.Int64
	mu    sync.Mutex
	first error
}

func (h *errorCounter) Handle(err error) {
	h.n.Add(1)
	h.mu.Lock()
	if h.first == nil {
		h.first = err
	}
	h.mu.Unlock()
}

func (h *errorCounter) firstErr() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.first
}
