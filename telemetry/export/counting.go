package export

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
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
	sink Sink
	delivered
}

func (e *countingExporter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	e.add(len(spans), e.SpanExporter.ExportSpans(ctx, spans))
	return nil
}

// delivered counts what an exporter accepted, and keeps its first error.
type delivered struct {
	exported atomic.Int64
	first    firstError
}

// add records one export of n items that ended with err.
func (d *delivered) add(n int, err error) {
	if err == nil {
		d.exported.Add(int64(n))
		return
	}
	d.first.keep(err)
}

// firstError keeps the first error it is given, to explain a count.
type firstError struct {
	mu  sync.Mutex
	err error
}

func (f *firstError) keep(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err == nil {
		f.err = err
	}
}

func (f *firstError) get() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.err
}

// shortfall says how many of total items (what) did not reach sink, and
// why; "" when all did.
func (d *delivered) shortfall(total int64, what string, sink Sink) string {
	lost := total - d.exported.Load()
	if lost <= 0 {
		return ""
	}
	why := "queue full or flush timed out"
	if err := d.first.get(); err != nil {
		why = firstLine(err)
	}
	return fmt.Sprintf("%d of %d %s not sent to %s (%s)", lost, total, what, sink, why)
}

// errorCounter is the global OpenTelemetry error handler: the SDK reports
// failed metric exports and other trouble there. Errors are counted, not
// printed, so a collector that is down does not flood the terminal; the
// first one explains the count at the end.
type errorCounter struct {
	n     atomic.Int64
	first firstError
	// closing is set when Shutdown begins: a periodic export in flight is
	// then cancelled, which is no loss, since the final export that
	// follows carries the same cumulative data (and its own failure is
	// reported apart).
	closing atomic.Bool
}

func (h *errorCounter) Handle(err error) {
	if h.closing.Load() && isCancellation(err) {
		return
	}
	h.n.Add(1)
	h.first.keep(err)
}

// isCancellation reports an error that only says its context was
// cancelled, as the OTLP exporters return it (gRPC's status included).
func isCancellation(err error) bool {
	return errors.Is(err, context.Canceled) || status.Code(err) == codes.Canceled
}
