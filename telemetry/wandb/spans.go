package wandb

import (
	"container/list"
	"context"
	"math"
	"slices"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// Span names the exporter gives a meaning to.
const (
	// FrameSpanName is the root of one frame's trace; each makes one
	// history row.
	FrameSpanName = "process_single_frame"
	// RunSpanName is the run-level span; its attributes go to the summary
	// under VideoSummaryPrefix.
	RunSpanName = "anonymize_video"
	// VideoSummaryPrefix prefixes the run span's attributes in the summary:
	// the history's key scheme, otel/span/<span name>/<attribute>.
	VideoSummaryPrefix = SpanKeyPrefix + RunSpanName + "/"
	// SpanKeyPrefix prefixes every history key made from a span.
	SpanKeyPrefix = "otel/span/"
)

// spanExporter collects each frame's spans until its root arrives, then
// turns the frame into one history row. A frame's spans come in any order
// and interleaved with other frames' (the pipeline overlaps frames, and
// children end before their root), hence the grouping by trace.
type spanExporter struct {
	r         *Run
	maxTraces int
	maxSpans  int

	mu      sync.Mutex
	pending map[trace.TraceID]*pendingTrace
	order   *list.List // trace IDs, oldest first, for eviction
}

type pendingTrace struct {
	spans []sdktrace.ReadOnlySpan
	elem  *list.Element
}

var _ sdktrace.SpanExporter = (*spanExporter)(nil)

func newSpanExporter(r *Run, maxTraces, maxSpans int) *spanExporter {
	return &spanExporter{
		r: r, maxTraces: maxTraces, maxSpans: maxSpans,
		pending: map[trace.TraceID]*pendingTrace{}, order: list.New(),
	}
}

// ExportSpans files the spans and queues a row for every frame root among
// them. It never waits on the disk or the network.
func (e *spanExporter) ExportSpans(_ context.Context, spans []sdktrace.ReadOnlySpan) error {
	if e.r.isClosed() {
		e.r.drops.lateSpans.Add(int64(len(spans)))
		return nil
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, s := range spans {
		tid := s.SpanContext().TraceID()
		switch {
		case s.Name() == FrameSpanName:
			e.frame(s)
		case s.Name() == RunSpanName:
			e.r.setVideo(s.Attributes())
			if !s.Parent().IsValid() {
				e.forget(tid)
			}
		case !s.Parent().IsValid():
			// Any other trace root ends its trace: what was kept for it
			// will never make a row.
			e.forget(tid)
		default:
			e.add(tid, s)
		}
	}
	return nil
}

// Shutdown lets the remaining spans go; Run.Finish counts the frames whose
// root never came.
func (e *spanExporter) Shutdown(context.Context) error { return nil }

func (e *spanExporter) add(tid trace.TraceID, s sdktrace.ReadOnlySpan) {
	pt := e.pending[tid]
	if pt == nil {
		for len(e.pending) >= e.maxTraces {
			oldest := e.order.Front()
			e.forget(oldest.Value.(trace.TraceID))
			e.r.drops.incompleteTraces.Add(1)
		}
		pt = &pendingTrace{elem: e.order.PushBack(tid)}
		e.pending[tid] = pt
	}
	if len(pt.spans) >= e.maxSpans {
		e.r.drops.spansOverCap.Add(1)
		return
	}
	pt.spans = append(pt.spans, s)
}

func (e *spanExporter) forget(tid trace.TraceID) {
	if pt := e.pending[tid]; pt != nil {
		e.order.Remove(pt.elem)
		delete(e.pending, tid)
	}
}

// pendingTraces is the number of traces still waiting for their root.
func (e *spanExporter) pendingTraces() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.pending)
}

// keyedSpan is a span with its history key.
type keyedSpan struct {
	key  string
	span sdktrace.ReadOnlySpan
}

// frame builds the row of the frame whose root is root, from the root's
// descendants received so far.
func (e *spanExporter) frame(root sdktrace.ReadOnlySpan) {
	tid := root.SpanContext().TraceID()
	var rest []sdktrace.ReadOnlySpan
	members := []keyedSpan{{key: root.Name(), span: root}}
	if pt := e.pending[tid]; pt != nil {
		children := map[trace.SpanID][]sdktrace.ReadOnlySpan{}
		for _, s := range pt.spans {
			pid := s.Parent().SpanID()
			children[pid] = append(children[pid], s)
		}
		// Walk down from the root: frames normally own their trace, but a
		// root nested in a longer trace only takes its own subtree.
		queue := []keyedSpan{members[0]}
		for len(queue) > 0 {
			p := queue[0]
			queue = queue[1:]
			for _, c := range children[p.span.SpanContext().SpanID()] {
				key := c.Name()
				if p.span != root {
					key = p.span.Name() + "." + c.Name()
				}
				ks := keyedSpan{key: key, span: c}
				members = append(members, ks)
				queue = append(queue, ks)
			}
			delete(children, p.span.SpanContext().SpanID())
		}
		for _, ss := range children {
			rest = append(rest, ss...)
		}
		e.forget(tid)
		if len(rest) > 0 {
			e.pending[tid] = &pendingTrace{spans: rest, elem: e.order.PushBack(tid)}
		}
	}
	e.r.enqueueHistory(frameRow(members, root, e.r.start))
}

// frameRow builds one history row. Keys that repeat within a frame (one
// per pose batch) sum their durations and keep the attributes of the span
// that ended last, so spans are taken in end order.
func frameRow(members []keyedSpan, root sdktrace.ReadOnlySpan, start time.Time) map[string]any {
	slices.SortStableFunc(members, func(a, b keyedSpan) int {
		return a.span.EndTime().Compare(b.span.EndTime())
	})
	row := map[string]any{}
	durations := map[string]float64{}
	for _, m := range members {
		durations[m.key] += float64(m.span.EndTime().Sub(m.span.StartTime())) / 1e6
		for _, kv := range m.span.Attributes() {
			if v, ok := attrValue(kv.Value); ok {
				row[SpanKeyPrefix+m.key+"/"+string(kv.Key)] = v
			}
		}
	}
	for k, d := range durations {
		row[SpanKeyPrefix+k+"/duration/ms"] = d
	}
	end := root.EndTime()
	row["_runtime"] = end.Sub(start).Seconds()
	row["_timestamp"] = float64(end.UnixNano()) / 1e9
	return row
}

// attrValue converts an attribute to what W&B charts: numbers as numbers,
// bools as bools, strings as strings. NaN and infinities have no JSON form
// and are left out.
func attrValue(v attribute.Value) (any, bool) {
	switch v.Type() {
	case attribute.BOOL:
		return v.AsBool(), true
	case attribute.INT64:
		return v.AsInt64(), true
	case attribute.FLOAT64:
		f := v.AsFloat64()
		return f, finite(f)
	case attribute.STRING:
		return v.AsString(), true
	case attribute.BOOLSLICE:
		return v.AsBoolSlice(), true
	case attribute.INT64SLICE:
		return v.AsInt64Slice(), true
	case attribute.FLOAT64SLICE:
		fs := v.AsFloat64Slice()
		return fs, !slices.ContainsFunc(fs, func(f float64) bool { return !finite(f) })
	case attribute.STRINGSLICE:
		return v.AsStringSlice(), true
	case attribute.EMPTY:
		return nil, false
	default:
		return v.Emit(), true
	}
}

func finite(f float64) bool { return !math.IsNaN(f) && !math.IsInf(f, 0) }
