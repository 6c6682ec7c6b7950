package gpu

import (
	"context"
	"errors"
	"testing"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/dgxa100"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/anonymize-dev/anonymize/telemetry/gpu/gputest"
)

func fakeH100s(t *testing.T) *dgxa100.Server {
	t.Helper()
	return gputest.H100s(2)
}

type point struct {
	value float64
	attrs attribute.Set
}

func collect(t *testing.T, r *sdkmetric.ManualReader) map[string][]point {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := r.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	out := map[string][]point{}
	units := map[string]string{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			units[m.Name] = m.Unit
			switch d := m.Data.(type) {
			case metricdata.Gauge[float64]:
				for _, p := range d.DataPoints {
					out[m.Name] = append(out[m.Name], point{p.Value, p.Attributes})
				}
			case metricdata.Gauge[int64]:
				for _, p := range d.DataPoints {
					out[m.Name] = append(out[m.Name], point{float64(p.Value), p.Attributes})
				}
			default:
				t.Errorf("%s is %T, want a gauge", m.Name, m.Data)
			}
		}
	}
	wantUnits := map[string]string{
		MetricUtilization: "1", MetricMemoryUtilization: "1", MetricMemoryUsage: "By", MetricMemoryLimit: "By",
		MetricTemperature: "Cel", MetricPower: "W", MetricProcessMemory: "By",
	}
	for name, unit := range wantUnits {
		if got, ok := units[name]; ok && got != unit {
			t.Errorf("%s unit %q, want %q", name, units[name], unit)
		}
	}
	return out
}

func TestGPUMetricsOnFakeH100s(t *testing.T) {
	c, err := Open(fakeH100s(t))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	if err := c.Register(mp.Meter("test")); err != nil {
		t.Fatal(err)
	}
	got := collect(t, reader)

	const gib = float64(1 << 30)
	want := map[string][2]float64{ // per GPU 0 and 1
		MetricUtilization:       {0.4, 0.5},
		MetricMemoryUsage:       {10 * gib, 11 * gib},
		MetricMemoryLimit:       {80 * gib, 80 * gib},
		MetricMemoryUtilization: {10.0 / 80, 11.0 / 80},
		MetricTemperature:       {50, 51},
		MetricPower:             {300, 301},
		MetricProcessMemory:     {1 * gib, 2 * gib},
	}
	for name, vals := range want {
		pts := got[name]
		if len(pts) != 2 {
			t.Errorf("%s: %d points, want one per GPU", name, len(pts))
			continue
		}
		for _, p := range pts {
			id, _ := p.attrs.Value("hw.id")
			idx := map[string]int{"GPU-fake-0": 0, "GPU-fake-1": 1}[id.AsString()]
			if p.value != vals[idx] {
				t.Errorf("%s on %s = %v, want %v", name, id.AsString(), p.value, vals[idx])
			}
			for k, v := range map[string]string{"hw.name": "NVIDIA H100 80GB HBM3", "hw.vendor": "NVIDIA", "hw.type": "gpu"} {
				if a, ok := p.attrs.Value(attribute.Key(k)); !ok || a.AsString() != v {
					t.Errorf("%s: attribute %s = %v, want %s", name, k, a.AsString(), v)
				}
			}
		}
	}
	if mem, ok := c.ProcessMemory(); !ok || mem != 3<<30 {
		t.Errorf("ProcessMemory = %d, %v; want 3 GiB (both GPUs, this process only)", mem, ok)
	}
	if i, ok := c.Index("GPU-fake-1"); !ok || i != 1 {
		t.Errorf("Index(GPU-bbbb) = %d, %v", i, ok)
	}
	if m := c.Model(); m != "NVIDIA H100 80GB HBM3" {
		t.Errorf("Model = %q", m)
	}
}

func TestUnsupportedReadingsAreSkipped(t *testing.T) {
	s := fakeH100s(t)
	for i := 0; i < 2; i++ {
		s.Devices[i].(*dgxa100.Device).GetPowerUsageFunc = func() (uint32, nvml.Return) { return 0, nvml.ERROR_NOT_SUPPORTED }
	}
	c, err := Open(s)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	reader := sdkmetric.NewManualReader()
	if err := c.Register(sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)).Meter("test")); err != nil {
		t.Fatal(err)
	}
	got := collect(t, reader)
	if len(got[MetricPower]) != 0 {
		t.Errorf("power reported although NVML does not support it: %v", got[MetricPower])
	}
	if len(got[MetricUtilization]) != 2 {
		t.Errorf("other readings must still be reported")
	}
}

func TestNoNVML(t *testing.T) {
	tests := []struct {
		name string
		lib  nvml.Interface
	}{
		{"no driver", &mock.Interface{InitFunc: func() nvml.Return { return nvml.ERROR_LIBRARY_NOT_FOUND }}},
		{"no GPU", &mock.Interface{
			InitFunc:           func() nvml.Return { return nvml.SUCCESS },
			ShutdownFunc:       func() nvml.Return { return nvml.SUCCESS },
			DeviceGetCountFunc: func() (int, nvml.Return) { return 0, nvml.SUCCESS },
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Open(tt.lib)
			if c != nil || !errors.Is(err, ErrUnavailable) {
				t.Errorf("Open = %v, %v; want ErrUnavailable", c, err)
			}
		})
	}
}
