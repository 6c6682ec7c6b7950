package export

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/dgxa100"
	"github.com/google/uuid"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	semconv "go.opentelemetry.io/otel/semconv/v1.4.0"

	"github.com/anonymize-dev/anonymize/internal/otlptest"
	"github.com/anonymize-dev/anonymize/telemetry"
	"github.com/anonymize-dev/anonymize/telemetry/gpu"
	"github.com/anonymize-dev/anonymize/telemetry/gpu/gputest"
	"github.com/anonymize-dev/anonymize/telemetry/wandb/wandbtest"
)

// TestSetupWiresGPUToBothSinks runs Setup on two fake H100s with OTLP and
// W&B on: the GPU gauges reach the collector under their semantic-
// convention names and W&B as system metrics next to the people count,
// and each frame's root span carries this process's GPU memory.
func TestSetupWiresGPUToBothSinks(t *testing.T) {
	recv, wb, getenv := localSinks(t, map[string]string{
		"WANDB_ENTITY": "e", "WANDB_PROJECT": "p", "WANDB_RUN_ID": "gpurun1", "OTEL_METRIC_EXPORT_INTERVAL": "100000",
	})
	var logs bytes.Buffer
	tel, err := Setup(context.Background(), Options{
		Sinks: []Sink{SinkOTLP, SinkWandB}, Getenv: getenv, NVML: gputest.H100s(2),
		Log: slog.New(slog.NewTextHandler(&logs, nil)), ServiceVersion: "test",
	})
	if err != nil {
		t.Fatal(err)
	}
	mem := tel.GPUMemory()
	if mem == nil {
		t.Fatal("no GPU memory sampler with GPUs present")
	}
	if b, ok := mem(); !ok || b != 3<<30 {
		t.Errorf("process GPU memory %d, %v; want 3 GiB", b, ok)
	}
	in, err := telemetry.NewInstruments()
	if err != nil {
		t.Fatal(err)
	}
	ctx, root := otel.Tracer("test").Start(context.Background(), "process_single_frame")
	in.DetectedPeople.Record(ctx, 4)
	root.SetAttributes(attribute.Int("people.count", 4))
	root.End()
	tel.Shutdown(context.Background(), 0, false)
	if strings.Contains(logs.String(), "telemetry incomplete") {
		t.Errorf("losses reported:\n%s", logs.String())
	}

	got := map[string]bool{}
	for _, m := range recv.Metrics() {
		got[m.GetName()] = true
	}
	for _, name := range []string{gpu.MetricUtilization, gpu.MetricMemoryUsage, gpu.MetricMemoryLimit,
		gpu.MetricMemoryUtilization, gpu.MetricTemperature, gpu.MetricPower, gpu.MetricProcessMemory,
		telemetry.MetricDetectedPeople, telemetry.MetricStageDuration} {
		if !got[name] {
			t.Errorf("OTLP lacks %s", name)
		}
	}
	if res := recv.Resources(); len(res) == 0 || res[0]["host.gpu.model"] != "NVIDIA H100 80GB HBM3" || res[0]["host.gpu.count"] != "2" {
		t.Errorf("resource lacks the GPU model: %v", res)
	}

	run, ok := wb.Run("e", "p", "gpurun1")
	if !ok {
		t.Fatal("no W&B run")
	}
	events, err := run.Events.Rows()
	if err != nil || len(events) == 0 {
		t.Fatalf("no W&B system metrics: %v", err)
	}
	last := events[len(events)-1]
	want := map[string]float64{
		"system.gpu.0.gpu": 40, "system.gpu.1.gpu": 50,
		"system.gpu.1.memoryAllocatedBytes": float64(11 << 30), "system.gpu.0.temp": 50, "system.gpu.1.powerWatts": 301,
		"system.gpu.process.1.memoryAllocatedBytes": float64(2 << 30), "anonymize.detected_people": 4,
	}
	for k, v := range want {
		if last[k] != v {
			t.Errorf("W&B event %s = %v, want %v (event %v)", k, last[k], v, last)
		}
	}
}

// TestSetupWithoutNVML: no driver, one info line, no GPU metrics, the rest
// works.
func TestSetupWithoutNVML(t *testing.T) {
	recv, endpoint := otlptest.StartHTTP(t)
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
	var logs bytes.Buffer
	tel, err := Setup(context.Background(), Options{
		Sinks:  []Sink{SinkOTLP},
		Getenv: func(k string) string { return map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint}[k] },
		NVML:   noNVMLLib(),
		Log:    slog.New(slog.NewTextHandler(&logs, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	if tel.GPUMemory() != nil {
		t.Error("a GPU memory sampler without NVML")
	}
	in, _ := telemetry.NewInstruments()
	in.DetectedPeople.Record(context.Background(), 2)
	tel.Shutdown(context.Background(), 0, false)
	if n := strings.Count(logs.String(), "GPU metrics off"); n != 1 {
		t.Errorf("%d 'GPU metrics off' lines, want 1:\n%s", n, logs.String())
	}
	for _, m := range recv.Metrics() {
		if strings.HasPrefix(m.GetName(), "hw.") {
			t.Errorf("GPU metric %s registered without NVML", m.GetName())
		}
	}
	if len(recv.Metrics()) == 0 {
		t.Error("no metrics at all: the rest must work without NVML")
	}
}

// noNVMLLib is an NVML whose library is missing, as on a machine without an
// NVIDIA driver.
func noNVMLLib() nvml.Interface {
	return &mock.Interface{InitFunc: func() nvml.Return { return nvml.ERROR_LIBRARY_NOT_FOUND }}
}

// localSinks starts an OTLP receiver and a fake W&B server and points the
// environment at them (plus extra): in the process, which autoexport
// reads, and in the returned getenv, which W&B's settings read.
func localSinks(tb testing.TB, extra map[string]string) (*otlptest.Receiver, *wandbtest.Server, func(string) string) {
	tb.Helper()
	recv, endpoint := otlptest.StartHTTP(tb)
	wb := wandbtest.NewServer(tb, "k")
	env := map[string]string{
		"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
		"WANDB_BASE_URL": wb.URL, "WANDB_API_KEY": "k", "WANDB_DIR": tb.TempDir(),
	}
	for k, v := range extra {
		env[k] = v
	}
	for k, v := range env {
		tb.Setenv(k, v)
	}
	return recv, wb, func(k string) string { return env[k] }
}

// TestResourceInstanceID: every process gets its own service.instance.id,
// so the Collector's Prometheus exporter keeps their series apart; an id
// set in OTEL_RESOURCE_ATTRIBUTES (a pod's name, say) wins.
func TestResourceInstanceID(t *testing.T) {
	id := func() string {
		t.Helper()
		res, err := (&Telemetry{}).resource(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		v, _ := res.Set().Value(semconv.ServiceInstanceIDKey)
		return v.AsString()
	}
	a, b := id(), id()
	if _, err := uuid.Parse(a); err != nil || a == b {
		t.Errorf("instance ids %q and %q: want two different UUIDs", a, b)
	}
	t.Setenv("OTEL_RESOURCE_ATTRIBUTES", "service.instance.id=batch-pod-3")
	if got := id(); got != "batch-pod-3" {
		t.Errorf("instance id %q with OTEL_RESOURCE_ATTRIBUTES set, want batch-pod-3", got)
	}
}

// TestGPUProcessUnseen: the per-process GPU memory's blind spot in a PID
// namespace of its own is reported, and only then.
func TestGPUProcessUnseen(t *testing.T) {
	for _, tc := range []struct {
		name    string
		foreign bool
		want    bool
	}{
		{"this process listed", false, false},
		{"only other processes listed", true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lib := gputest.H100s(1)
			if tc.foreign {
				lib.Devices[0].(*dgxa100.Device).GetComputeRunningProcessesFunc = func() ([]nvml.ProcessInfo, nvml.Return) {
					return []nvml.ProcessInfo{{Pid: 1, UsedGpuMemory: 5 << 30}}, nvml.SUCCESS
				}
			}
			tel, err := Setup(context.Background(), Options{
				Sinks: []Sink{SinkConsole}, Console: io.Discard, NVML: lib, Getenv: func(string) string { return "" },
			})
			if err != nil {
				t.Fatal(err)
			}
			defer tel.Shutdown(context.Background(), 0, false)
			mem, ok := tel.GPUMemory()()
			if ok == tc.want || (ok && mem != 1<<30) {
				t.Errorf("process GPU memory %d, %v", mem, ok)
			}
			if got := tel.GPUProcessUnseen(); got != tc.want {
				t.Errorf("GPUProcessUnseen() = %v, want %v", got, tc.want)
			}
		})
	}
}
