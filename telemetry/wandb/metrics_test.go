package wandb

import (
	"context"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

func gauge[N int64 | float64](name string, points ...metricdata.DataPoint[N]) metricdata.Metrics {
	return metricdata.Metrics{Name: name, Data: metricdata.Gauge[N]{DataPoints: points}}
}

func point[N int64 | float64](t time.Time, v N, kv ...attribute.KeyValue) metricdata.DataPoint[N] {
	return metricdata.DataPoint[N]{Attributes: attribute.NewSet(kv...), Time: t, Value: v}
}

func TestMetricEvents(t *testing.T) {
	const gpuA, gpuB = "GPU-aaaa", "GPU-bbbb"
	// The caller knows A as device 1 and B as device 0 (nvidia-smi order).
	lookup := func(uuid string) (int, bool) {
		switch uuid {
		case gpuA:
			return 1, true
		case gpuB:
			return 0, true
		}
		return 0, false
	}
	s := testSettings(t, ModeOffline, nil, "metrics1")
	r, err := Start(Options{Settings: s, GPUIndex: lookup, now: fixedClock(runStart)})
	if err != nil {
		t.Fatal(err)
	}
	exp := r.MetricExporter()
	at := runStart.Add(3 * time.Second)
	id := func(u string) attribute.KeyValue { return attribute.String(AttrHWID, u) }
	gpuType := attribute.String(AttrHWType, "gpu")
	task := func(t string) attribute.KeyValue { return attribute.String(AttrGPUTask, t) }

	exports := []*metricdata.ResourceMetrics{
		{ScopeMetrics: []metricdata.ScopeMetrics{{Metrics: []metricdata.Metrics{
			// Only the general utilisation is W&B's GPU utilisation; the
			// video engines' come after it and must not overwrite it.
			gauge(MetricGPUUtilization,
				point(at, 0.25, id(gpuA), task("general")), point(at, 0.5, id(gpuB), task("general")),
				point(at, 0.9, id(gpuA), task("decoder")), point(at, 0.8, id(gpuB), task("decoder")),
				point(at, 0.0, id(gpuA), task("encoder")), point(at, 0.0, id(gpuB), task("encoder"))),
			gauge(MetricGPUMemoryUtilization, point(at, 0.125, id(gpuA)), point(at, 1.0, id(gpuB))),
			gauge(MetricGPUMemoryUsage, point(at, int64(3<<30), id(gpuA)), point(at, int64(5<<30), id(gpuB))),
			gauge(MetricGPUMemoryLimit, point(at, int64(80<<30), id(gpuA)), point(at, int64(80<<30), id(gpuB))),
			gauge(MetricTemperature,
				point(at, 61.0, id(gpuA), gpuType), point(at, 45.0, id(gpuB), gpuType),
				// A CPU sensor under the same name is not a GPU's.
				point(at, 99.0, id("cpu0"), attribute.String(AttrHWType, "cpu"))),
			gauge(MetricPower, point(at, 310.5, id(gpuA), gpuType), point(at, 120.0, id(gpuB), gpuType)),
			gauge(MetricGPUPowerLimit, point(at, 700.0, id(gpuA), gpuType), point(at, 350.0, id(gpuB), gpuType)),
		}}}},
		{ScopeMetrics: []metricdata.ScopeMetrics{{Metrics: []metricdata.Metrics{
			gauge(MetricProcessGPUMemory, point(at.Add(time.Second), int64(1<<30), id(gpuA))),
			gauge(MetricDetectedPeople, point(at.Add(time.Second), int64(3))),
			// Unknown to the lookup: the first free index, 2. No
			// hw.gpu.task: the GPU as a whole.
			gauge(MetricGPUUtilization, point(at.Add(time.Second), 0.75, id("GPU-cccc"))),
			// A decoder alone adds nothing.
			gauge(MetricGPUUtilization, point(at.Add(time.Second), 0.3, id(gpuA), task("decoder"))),
			gauge("anonymize.frames", point(at, int64(10))),
		}}}},
		// Only metrics W&B does not get: no line.
		{ScopeMetrics: []metricdata.ScopeMetrics{{Metrics: []metricdata.Metrics{
			gauge("process.cpu.utilization", point(at, 0.5)),
		}}}},
		{},
	}
	for _, rm := range exports {
		if err := exp.Export(context.Background(), rm); err != nil {
			t.Fatalf("Export: %v", err)
		}
	}
	res := finish(t, r, 5*time.Second, 0)
	events := localEvents(t, r.Dir())
	if len(events) != 2 || res.Events != 2 {
		t.Fatalf("%d event lines (result says %d), want 2: %v", len(events), res.Events, events)
	}

	for i, want := range []map[string]any{
		{
			"system.gpu.1.gpu": 25.0, "system.gpu.0.gpu": 50.0,
			"system.gpu.1.memoryAllocated": 12.5, "system.gpu.0.memoryAllocated": 100.0,
			"system.gpu.1.memoryAllocatedBytes": float64(3 << 30), "system.gpu.0.memoryAllocatedBytes": float64(5 << 30),
			"system.gpu.1.memoryTotalBytes": float64(80 << 30), "system.gpu.0.memoryTotalBytes": float64(80 << 30),
			"system.gpu.1.temp": 61.0, "system.gpu.0.temp": 45.0,
			"system.gpu.1.powerWatts": 310.5, "system.gpu.0.powerWatts": 120.0,
			"system.gpu.1.enforcedPowerLimitWatts": 700.0, "system.gpu.0.enforcedPowerLimitWatts": 350.0,
			"_wandb": true, "_timestamp": float64(at.Unix()), "_runtime": 3.0,
		},
		{
			"system.gpu.process.1.memoryAllocatedBytes": float64(1 << 30),
			"anonymize.detected_people":                 3.0,
			"system.gpu.2.gpu":                          75.0,
			"_wandb":                                    true, "_timestamp": float64(at.Unix() + 1), "_runtime": 4.0,
		},
	} {
		if !jsonEqual(events[i], want) {
			t.Errorf("event %d:\n got %v\nwant %v", i, events[i], want)
		}
	}
}

// The exporter works under the SDK's own reader: an observable gauge read
// on a flush becomes an event line.
func TestMetricExporterWithSDK(t *testing.T) {
	s := testSettings(t, ModeOffline, nil, "metrics2")
	r, err := Start(Options{Settings: s})
	if err != nil {
		t.Fatal(err)
	}
	reader := sdkmetric.NewPeriodicReader(r.MetricExporter(), sdkmetric.WithInterval(time.Hour))
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	m := mp.Meter("test")
	_, err = m.Float64ObservableGauge(MetricGPUUtilization, metric.WithFloat64Callback(func(_ context.Context, o metric.Float64Observer) error {
		o.Observe(0.4, metric.WithAttributes(attribute.String(AttrHWID, "GPU-x")))
		return nil
	}))
	if err != nil {
		t.Fatal(err)
	}
	people, err := m.Int64Gauge(MetricDetectedPeople)
	if err != nil {
		t.Fatal(err)
	}
	people.Record(context.Background(), 2)
	if err := mp.Shutdown(context.Background()); err != nil { // exports once more
		t.Fatal(err)
	}
	finish(t, r, 5*time.Second, 0)
	events := localEvents(t, r.Dir())
	if len(events) != 1 {
		t.Fatalf("%d event lines, want 1: %v", len(events), events)
	}
	if got := events[0]["system.gpu.0.gpu"]; got != 40.0 {
		t.Errorf("system.gpu.0.gpu = %v, want 40", got)
	}
	if got := events[0]["anonymize.detected_people"]; got != 2.0 {
		t.Errorf("anonymize.detected_people = %v, want 2", got)
	}
}
