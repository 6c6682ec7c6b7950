package export

import (
	"context"
	"sync"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/anonymize-dev/anonymize/telemetry"
)

// stageMetrics turns every span into a sample of the stage-duration
// histogram, so per-stage latency reaches Prometheus without a Collector
// spanmetrics connector and from the same instrumentation as the traces.
// A span's stage is its name, qualified by its parent's for spans below
// a frame's direct children ("pose_estimation.inference"), since
// preprocess/inference/postprocess exist under both models.
type stageMetrics struct {
	hist metric.Float64Histogram

	mu   sync.Mutex
	live map[trace.SpanID]spanNode
	// attrs holds one attribute option per stage name: the same dozen
	// stages recur every frame, so their sets are built once.
	attrs map[string]metric.RecordOption
}

type spanNode struct {
	name  string
	depth int
}

func newStageMetrics(m metric.Meter) (*stageMetrics, error) {
	h, err := m.Float64Histogram(telemetry.MetricStageDuration, metric.WithUnit("s"),
		metric.WithDescription("Time spent in each pipeline stage per frame, from the frame's spans."),
		metric.WithExplicitBucketBoundaries(telemetry.DurationBuckets...))
	if err != nil {
		return nil, err
	}
	return &stageMetrics{hist: h, live: map[trace.SpanID]spanNode{}, attrs: map[string]metric.RecordOption{}}, nil
}

func (p *stageMetrics) OnStart(_ context.Context, s sdktrace.ReadWriteSpan) {
	node := spanNode{name: s.Name()}
	p.mu.Lock()
	if parent, ok := p.live[s.Parent().SpanID()]; ok && s.Parent().IsValid() {
		node.depth = parent.depth + 1
		if node.depth >= 2 {
			node.name = parent.name + "." + node.name
		}
	}
	p.live[s.SpanContext().SpanID()] = node
	p.mu.Unlock()
}

func (p *stageMetrics) OnEnd(s sdktrace.ReadOnlySpan) {
	p.mu.Lock()
	node, ok := p.live[s.SpanContext().SpanID()]
	delete(p.live, s.SpanContext().SpanID())
	if !ok {
		node.name = s.Name()
	}
	opt, ok := p.attrs[node.name]
	if !ok {
		opt = metric.WithAttributeSet(attribute.NewSet(attribute.String(telemetry.AttrStage, node.name)))
		p.attrs[node.name] = opt
	}
	p.mu.Unlock()
	d := s.EndTime().Sub(s.StartTime()).Seconds()
	// The span's own context, so the sample's exemplar points at its trace.
	ctx := trace.ContextWithSpanContext(context.Background(), s.SpanContext())
	p.hist.Record(ctx, d, opt)
}

func (p *stageMetrics) Shutdown(context.Context) error   { return nil }
func (p *stageMetrics) ForceFlush(context.Context) error { return nil }
