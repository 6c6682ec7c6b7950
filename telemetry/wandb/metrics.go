package wandb

import (
	"context"
	"fmt"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

// Metric names and attributes the exporter reads (OpenTelemetry hardware
// semantic conventions, plus the program's own).
const (
	MetricGPUUtilization       = "hw.gpu.utilization"
	MetricGPUMemoryUtilization = "hw.gpu.memory.utilization"
	MetricGPUMemoryUsage       = "hw.gpu.memory.usage"
	MetricGPUMemoryLimit       = "hw.gpu.memory.limit"
	MetricTemperature          = "hw.temperature"
	MetricPower                = "hw.power"
	MetricGPUPowerLimit        = "hw.gpu.power.limit"
	MetricProcessGPUMemory     = "anonymize.process.gpu.memory.usage"
	MetricDetectedPeople       = "anonymize.detected_people"

	// AttrHWID carries the GPU's UUID.
	AttrHWID = "hw.id"
	// AttrHWType says what hw.temperature and hw.power measure; only "gpu"
	// is kept.
	AttrHWType = "hw.type"
	// AttrGPUTask says what part of the GPU hw.gpu.utilization measures:
	// general, encoder or decoder. Only general is W&B's GPU utilisation.
	AttrGPUTask = "hw.gpu.task"
)

// gpuMetric maps one OpenTelemetry metric to a W&B system metric.
type gpuMetric struct {
	key     func(i int) string
	scale   float64 // 100 turns a 0–1 ratio into W&B's percent
	gpuOnly bool    // needs hw.type=gpu (shared hardware metric names)
	// task, when set, keeps only the points with that hw.gpu.task, or
	// none: a series without one is the GPU as a whole.
	task string
}

func systemGPU(name string) func(int) string {
	return func(i int) string { return fmt.Sprintf("system.gpu.%d.%s", i, name) }
}

var gpuMetrics = map[string]gpuMetric{
	MetricGPUUtilization:       {key: systemGPU("gpu"), scale: 100, task: "general"},
	MetricGPUMemoryUtilization: {key: systemGPU("memoryAllocated"), scale: 100},
	MetricGPUMemoryUsage:       {key: systemGPU("memoryAllocatedBytes"), scale: 1},
	MetricGPUMemoryLimit:       {key: systemGPU("memoryTotalBytes"), scale: 1},
	MetricTemperature:          {key: systemGPU("temp"), scale: 1, gpuOnly: true},
	MetricPower:                {key: systemGPU("powerWatts"), scale: 1, gpuOnly: true},
	MetricGPUPowerLimit:        {key: systemGPU("enforcedPowerLimitWatts"), scale: 1},
	MetricProcessGPUMemory: {key: func(i int) string {
		return fmt.Sprintf("system.gpu.process.%d.memoryAllocatedBytes", i)
	}, scale: 1},
}

// metricExporter turns each periodic export into one line of
// wandb-events.jsonl, W&B's system metrics.
type metricExporter struct {
	r        *Run
	gpuIndex func(uuid string) (int, bool)

	mu   sync.Mutex
	seen map[string]int // GPU UUID → index, once decided
	used map[int]bool
}

var _ sdkmetric.Exporter = (*metricExporter)(nil)

func newMetricExporter(r *Run, gpuIndex func(string) (int, bool)) *metricExporter {
	return &metricExporter{r: r, gpuIndex: gpuIndex, seen: map[string]int{}, used: map[int]bool{}}
}

// Temporality is cumulative: gauges are what matter here, and cumulative
// keeps any counter W&B might see monotonic.
func (e *metricExporter) Temporality(sdkmetric.InstrumentKind) metricdata.Temporality {
	return metricdata.CumulativeTemporality
}

// Aggregation is the SDK's default for every instrument kind.
func (e *metricExporter) Aggregation(k sdkmetric.InstrumentKind) sdkmetric.Aggregation {
	return sdkmetric.DefaultAggregationSelector(k)
}

// Export queues one system event with the GPU metrics and the people
// count of rm; it never waits on the disk or the network, and an export
// with none of them writes nothing.
func (e *metricExporter) Export(_ context.Context, rm *metricdata.ResourceMetrics) error {
	if rm == nil {
		return nil
	}
	if e.r.isClosed() {
		e.r.drops.lateEvents.Add(1)
		return nil
	}
	ev := map[string]any{}
	var latest time.Time
	e.mu.Lock()
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			gm, isGPU := gpuMetrics[m.Name]
			if !isGPU && m.Name != MetricDetectedPeople {
				continue
			}
			eachPoint(m.Data, func(attrs attribute.Set, f float64, i int64, isInt bool, t time.Time) {
				if t.After(latest) {
					latest = t
				}
				if !isGPU {
					if v, ok := number(f, i, isInt, 1); ok {
						ev[MetricDetectedPeople] = v
					}
					return
				}
				if gm.gpuOnly {
					if v, ok := attrs.Value(AttrHWType); !ok || v.AsString() != "gpu" {
						return
					}
				}
				if gm.task != "" {
					if v, ok := attrs.Value(AttrGPUTask); ok && v.AsString() != gm.task {
						return
					}
				}
				uuid := ""
				if v, ok := attrs.Value(AttrHWID); ok {
					uuid = v.Emit()
				}
				if v, ok := number(f, i, isInt, gm.scale); ok {
					ev[gm.key(e.index(uuid))] = v
				}
			})
		}
	}
	e.mu.Unlock()
	if len(ev) == 0 {
		return nil
	}
	if latest.IsZero() {
		latest = e.r.now()
	}
	ev["_wandb"] = true
	ev["_timestamp"] = float64(latest.UnixNano()) / 1e9
	ev["_runtime"] = latest.Sub(e.r.start).Seconds()
	e.r.enqueueEvent(ev)
	return nil
}

// ForceFlush has nothing to do: every export is queued at once.
func (e *metricExporter) ForceFlush(context.Context) error { return nil }

// Shutdown has nothing to release; Run.Finish closes the files.
func (e *metricExporter) Shutdown(context.Context) error { return nil }

// index finds the W&B index of a GPU: the caller's lookup (the device
// order nvidia-smi shows), else the lowest index not yet taken, in order of
// first appearance.
func (e *metricExporter) index(uuid string) int {
	if i, ok := e.seen[uuid]; ok {
		return i
	}
	i, ok := -1, false
	if e.gpuIndex != nil && uuid != "" {
		i, ok = e.gpuIndex(uuid)
	}
	if !ok || i < 0 {
		i = 0
		for e.used[i] {
			i++
		}
	}
	e.seen[uuid] = i
	e.used[i] = true
	return i
}

// number scales a data point's value, keeping integers integers when
// nothing scales them; NaN and infinities have no JSON form.
func number(f float64, i int64, isInt bool, scale float64) (any, bool) {
	if isInt && scale == 1 {
		return i, true
	}
	if isInt {
		f = float64(i)
	}
	f *= scale
	return f, finite(f)
}

// eachPoint calls fn for each data point of a gauge or sum, whatever its
// number type; histograms and the rest carry nothing W&B's system panel
// shows.
func eachPoint(data metricdata.Aggregation, fn func(attrs attribute.Set, f float64, i int64, isInt bool, t time.Time)) {
	switch d := data.(type) {
	case metricdata.Gauge[float64]:
		for _, p := range d.DataPoints {
			fn(p.Attributes, p.Value, 0, false, p.Time)
		}
	case metricdata.Gauge[int64]:
		for _, p := range d.DataPoints {
			fn(p.Attributes, 0, p.Value, true, p.Time)
		}
	case metricdata.Sum[float64]:
		for _, p := range d.DataPoints {
			fn(p.Attributes, p.Value, 0, false, p.Time)
		}
	case metricdata.Sum[int64]:
		for _, p := range d.DataPoints {
			fn(p.Attributes, 0, p.Value, true, p.Time)
		}
	}
}
