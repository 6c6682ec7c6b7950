package gpu

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
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

// series names a metric's series of one hw.gpu.task, as collect keys them.
func series(name, task string) string { return name + "{" + AttrTask + "=" + task + "}" }

// collect reads every gauge point, keyed by metric name, or by series for
// the points that have a hw.gpu.task.
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
					out[key(m.Name, p.Attributes)] = append(out[key(m.Name, p.Attributes)], point{p.Value, p.Attributes})
				}
			case metricdata.Gauge[int64]:
				for _, p := range d.DataPoints {
					out[key(m.Name, p.Attributes)] = append(out[key(m.Name, p.Attributes)], point{float64(p.Value), p.Attributes})
				}
			default:
				t.Errorf("%s is %T, want a gauge", m.Name, m.Data)
			}
		}
	}
	wantUnits := map[string]string{
		MetricUtilization: "1", MetricMemoryUtilization: "1", MetricMemoryUsage: "By", MetricMemoryLimit: "By",
		MetricTemperature: "Cel", MetricPower: "W", MetricPowerLimit: "W", MetricProcessMemory: "By",
	}
	for name, unit := range wantUnits {
		if got, ok := units[name]; ok && got != unit {
			t.Errorf("%s unit %q, want %q", name, units[name], unit)
		}
	}
	return out
}

// openRegistered opens lib's GPUs with their gauges on a meter read by
// the returned reader; closed when the test ends.
func openRegistered(t *testing.T, lib nvml.Interface) (*Collector, *sdkmetric.ManualReader) {
	t.Helper()
	c, err := Open(lib)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	reader := sdkmetric.NewManualReader()
	if err := c.Register(sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)).Meter("test")); err != nil {
		t.Fatal(err)
	}
	return c, reader
}

func key(name string, attrs attribute.Set) string {
	if t, ok := attrs.Value(AttrTask); ok {
		return series(name, t.AsString())
	}
	return name
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
		series(MetricUtilization, TaskGeneral): {0.4, 0.5},
		series(MetricUtilization, TaskDecoder): {0.05, 0.06},
		series(MetricUtilization, TaskEncoder): {0, 0},
		MetricPowerLimit:                       {700, 700},
		MetricMemoryUsage:                      {10 * gib, 11 * gib},
		MetricMemoryLimit:                      {80 * gib, 80 * gib},
		MetricMemoryUtilization:                {10.0 / 80, 11.0 / 80},
		MetricTemperature:                      {50, 51},
		MetricPower:                            {300, 301},
		MetricProcessMemory:                    {1 * gib, 2 * gib},
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
			// hw.id, hw.name, hw.vendor, hw.type, and hw.gpu.task on
			// the utilisation only (collect keys that by series).
			wantAttrs := 4
			if _, ok := p.attrs.Value(AttrTask); ok {
				wantAttrs = 5
			}
			if p.attrs.Len() != wantAttrs {
				t.Errorf("%s has attributes %v", name, p.attrs.ToSlice())
			}
		}
	}
	for name, pts := range got {
		if _, ok := want[name]; !ok {
			t.Errorf("unexpected series %s: %v", name, pts)
		}
	}
	if mem, ok := c.ProcessMemory(); !ok || mem != 3<<30 {
		t.Errorf("ProcessMemory = %d, %v; want 3 GiB (both GPUs, this process only)", mem, ok)
	}
	if c.PIDNamespaceMismatch() {
		t.Error("PIDNamespaceMismatch although this process's PID was listed")
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
		d := s.Devices[i].(*dgxa100.Device)
		d.GetPowerUsageFunc = func() (uint32, nvml.Return) { return 0, nvml.ERROR_NOT_SUPPORTED }
		d.GetEnforcedPowerLimitFunc = func() (uint32, nvml.Return) { return 0, nvml.ERROR_NOT_SUPPORTED }
		d.GetEncoderUtilizationFunc = func() (uint32, uint32, nvml.Return) { return 0, 0, nvml.ERROR_NOT_SUPPORTED }
	}
	_, reader := openRegistered(t, s)
	got := collect(t, reader)
	for _, name := range []string{MetricPower, MetricPowerLimit, series(MetricUtilization, TaskEncoder)} {
		if len(got[name]) != 0 {
			t.Errorf("%s reported although NVML does not support it: %v", name, got[name])
		}
	}
	for _, name := range []string{series(MetricUtilization, TaskGeneral), series(MetricUtilization, TaskDecoder), MetricTemperature} {
		if len(got[name]) != 2 {
			t.Errorf("%s: %d points; other readings must still be reported", name, len(got[name]))
		}
	}
}

// withStatus points Open at a /proc/self/status of the given content.
func withStatus(t *testing.T, content string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "status")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	old := procStatus
	procStatus = path
	t.Cleanup(func() { procStatus = old })
}

// The per-process memory needs this process's PID among NVML's, which are
// the host's: inside a container's PID namespace it is missing, and
// PIDNamespaceMismatch says so.
func TestProcessMemoryAndPIDNamespaces(t *testing.T) {
	self := uint32(os.Getpid())
	outer, foreign := self+1, self+2 // distinct from self, whatever it is
	const gib = 1 << 30
	tests := []struct {
		name     string
		status   string            // /proc/self/status
		procs    map[uint32]uint64 // NVML's compute processes on each GPU
		ret      nvml.Return
		wantMem  int64 // per GPU; 0: no series
		mismatch bool
	}{
		{
			name:   "own PID listed",
			status: fmt.Sprintf("Name:\tanonymize\nNSpid:\t%d\n", self),
			procs:  map[uint32]uint64{self: 1 * gib, foreign: 5 * gib}, wantMem: 1 * gib,
		},
		{
			// /proc from the host's PID namespace: NSpid shows the
			// host PID first. The inner PID may be a host process's.
			name:   "host PID from NSpid",
			status: fmt.Sprintf("NSpid:\t%d\t%d\n", outer, self),
			procs:  map[uint32]uint64{outer: 2 * gib, self: 5 * gib}, wantMem: 2 * gib,
		},
		{
			name:   "only foreign PIDs: container without the host's PID namespace",
			status: fmt.Sprintf("NSpid:\t%d\n", self),
			procs:  map[uint32]uint64{foreign: 1 * gib, 1: 5 * gib}, mismatch: true,
		},
		{
			name:   "no processes: a CPU run on an idle GPU",
			status: fmt.Sprintf("NSpid:\t%d\n", self),
			procs:  map[uint32]uint64{},
		},
		{
			name:   "NVML cannot list processes",
			status: fmt.Sprintf("NSpid:\t%d\n", self),
			procs:  map[uint32]uint64{foreign: 1 * gib}, ret: nvml.ERROR_NO_PERMISSION,
		},
		{
			name:   "no NSpid line (old kernel)",
			status: "Name:\tanonymize\n",
			procs:  map[uint32]uint64{self: 1 * gib}, wantMem: 1 * gib,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			withStatus(t, tt.status)
			s := fakeH100s(t)
			for i := 0; i < 2; i++ {
				s.Devices[i].(*dgxa100.Device).GetComputeRunningProcessesFunc = func() ([]nvml.ProcessInfo, nvml.Return) {
					if tt.ret != nvml.SUCCESS {
						return nil, tt.ret
					}
					var out []nvml.ProcessInfo
					for pid, mem := range tt.procs {
						out = append(out, nvml.ProcessInfo{Pid: pid, UsedGpuMemory: mem})
					}
					return out, nvml.SUCCESS
				}
			}
			c, reader := openRegistered(t, s)
			pts := collect(t, reader)[MetricProcessMemory]
			mem, ok := c.ProcessMemory()
			if tt.wantMem == 0 {
				if len(pts) != 0 || ok {
					t.Errorf("process memory reported: %v; ProcessMemory = %d, %v", pts, mem, ok)
				}
			} else {
				if len(pts) != 2 {
					t.Fatalf("%d points of %s, want one per GPU", len(pts), MetricProcessMemory)
				}
				for _, p := range pts {
					if p.value != float64(tt.wantMem) {
						t.Errorf("%s = %v, want %d", MetricProcessMemory, p.value, tt.wantMem)
					}
				}
				if !ok || mem != 2*tt.wantMem {
					t.Errorf("ProcessMemory = %d, %v; want %d", mem, ok, 2*tt.wantMem)
				}
			}
			if got := c.PIDNamespaceMismatch(); got != tt.mismatch {
				t.Errorf("PIDNamespaceMismatch = %v, want %v", got, tt.mismatch)
			}
		})
	}
}

// Samples before this process has a CUDA context see only the others';
// once it is listed, the PID namespace is shown to be fine.
func TestNoMismatchOnceListed(t *testing.T) {
	withStatus(t, "Name:\tanonymize\n")
	s := fakeH100s(t)
	samples := 0
	for i := 0; i < 2; i++ {
		s.Devices[i].(*dgxa100.Device).GetComputeRunningProcessesFunc = func() ([]nvml.ProcessInfo, nvml.Return) {
			procs := []nvml.ProcessInfo{{Pid: uint32(os.Getpid()) + 1, UsedGpuMemory: 5 << 30}}
			if samples > 0 {
				procs = append(procs, nvml.ProcessInfo{Pid: uint32(os.Getpid()), UsedGpuMemory: 1 << 30})
			}
			return procs, nvml.SUCCESS
		}
	}
	c, err := Open(s)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.interval = 0 // every call samples
	if _, ok := c.ProcessMemory(); ok {
		t.Fatal("process memory before the process was listed")
	}
	if !c.PIDNamespaceMismatch() {
		t.Error("no mismatch while only others were listed")
	}
	samples++
	if mem, ok := c.ProcessMemory(); !ok || mem != 2<<30 {
		t.Errorf("ProcessMemory = %d, %v; want 2 GiB", mem, ok)
	}
	if c.PIDNamespaceMismatch() {
		t.Error("mismatch although this process was listed on a later sample")
	}
	c.Close()
	if c.PIDNamespaceMismatch() {
		t.Error("the answer changed after Close")
	}
}

func TestOutermostPID(t *testing.T) {
	tests := []struct {
		name   string
		status string
		want   uint32
		ok     bool
	}{
		{"own namespace only", "Name:\tanonymize\nTgid:\t7\nNSpid:\t7\nNSpgid:\t7\n", 0, false},
		{"one level down", "Name:\tanonymize\nNStgid:\t48213\t7\nNSpid:\t48213\t7\nNSpgid:\t48213\t7\n", 48213, true},
		{"nested containers", "NSpid:\t900\t50\t1\n", 900, true},
		{"spaces, no trailing newline", "NSpid:  31 1", 31, true},
		{"no NSpid line (kernel before 4.1)", "Name:\tanonymize\nPid:\t7\n", 0, false},
		{"empty NSpid", "NSpid:\n", 0, false},
		{"not a number", "NSpid:\tx\t7\n", 0, false},
		{"zero", "NSpid:\t0\t7\n", 0, false},
		{"out of range", "NSpid:\t4294967296\t7\n", 0, false},
		{"empty", "", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := outermostPID(tt.status)
			if got != tt.want || ok != tt.ok {
				t.Errorf("outermostPID = %d, %v; want %d, %v", got, ok, tt.want, tt.ok)
			}
		})
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
