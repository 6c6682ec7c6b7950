package bench

import (
	"context"
	"sync"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/anonymize-dev/anonymize/detect"
)

// stageClock sums the time a run spends in each of the pipeline's spans,
// keyed by the span's name under its parent's ("person_detection/inference"),
// so a benchmark reads its figures from the same instrumentation as an
// operator's traces.
type stageClock struct {
	mu    sync.Mutex
	names map[trace.SpanID]string
	total map[string]time.Duration
	count map[string]int
}

var _ sdktrace.SpanProcessor = (*stageClock)(nil)

func newStageClock() *stageClock {
	return &stageClock{names: map[trace.SpanID]string{}, total: map[string]time.Duration{}, count: map[string]int{}}
}

func (c *stageClock) OnStart(_ context.Context, s sdktrace.ReadWriteSpan) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.names[s.SpanContext().SpanID()] = s.Name()
}

func (c *stageClock) OnEnd(s sdktrace.ReadOnlySpan) {
	c.mu.Lock()
	defer c.mu.Unlock()
	key := s.Name()
	// Children end before their parent, so the parent's name is still
	// known; a frame's root and the run have no parent worth naming.
	if parent, ok := c.names[s.Parent().SpanID()]; ok && parent != frameSpan {
		key = parent + "/" + key
	}
	delete(c.names, s.SpanContext().SpanID())
	d := s.EndTime().Sub(s.StartTime())
	// Frames that shared a model run each have a span of the whole run:
	// each counts its share.
	for _, kv := range s.Attributes() {
		if kv.Key == detect.AttrBatchFrames && kv.Value.AsInt64() > 1 {
			d /= time.Duration(kv.Value.AsInt64())
		}
	}
	c.total[key] += d
	c.count[key]++
}

func (c *stageClock) Shutdown(context.Context) error   { return nil }
func (c *stageClock) ForceFlush(context.Context) error { return nil }

// reset forgets what was summed (between runs).
func (c *stageClock) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	clear(c.total)
	clear(c.count)
}

// get returns the time summed under key and how many spans it came from.
func (c *stageClock) get(key string) (time.Duration, int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.total[key], c.count[key]
}
