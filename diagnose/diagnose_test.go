package diagnose

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/dgxa100"

	"github.com/anonymize-dev/anonymize/inference"
	"github.com/anonymize-dev/anonymize/internal/testutil"
	"github.com/anonymize-dev/anonymize/models"
	"github.com/anonymize-dev/anonymize/models/synthetic"
)

func TestCheckNVMLWithGPUs(t *testing.T) {
	var r Report
	checkNVML(&r, dgxa100.New())
	var buf bytes.Buffer
	r.Write(&buf)
	out := buf.String()
	for _, want := range []string{"driver 550.54.15, 8 GPU(s)", "GPU 0", "GPU 7", "Mock NVIDIA A100-SXM4-40GB, 40.0 GiB memory"} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
	if r.Failed() {
		t.Errorf("GPUs present: nothing should fail:\n%s", out)
	}
}

func TestCheckNVMLWithoutDriver(t *testing.T) {
	var r Report
	checkNVML(&r, &mock.Interface{InitFunc: func() nvml.Return { return nvml.ERROR_LIBRARY_NOT_FOUND }})
	if len(r.Checks) != 1 || r.Checks[0].Status != Info || !strings.Contains(r.Checks[0].Detail, "GPU metrics will be off") {
		t.Errorf("checks %+v, want one info line", r.Checks)
	}
	if r.Failed() {
		t.Error("no NVML is not a failure: the CPU path works")
	}
}

func TestReportFailed(t *testing.T) {
	var r Report
	r.add("A", "x", OK, "fine")
	r.add("A", "y", Warn, "meh")
	if r.Failed() {
		t.Error("ok and warn are not failures")
	}
	r.add("B", "z", Fail, "broken: %d", 3)
	if !r.Failed() {
		t.Error("a FAIL check must fail the report")
	}
	var buf bytes.Buffer
	r.Write(&buf)
	if !strings.Contains(buf.String(), "B\n  FAIL  z  broken: 3") {
		t.Errorf("report:\n%s", buf.String())
	}
}

// TestCheckModelsNamesNullModels: the benchmarks' null models are called
// what they are, not demo models, and the demo models keep their warning.
func TestCheckModelsNamesNullModels(t *testing.T) {
	rt, err := inference.Load(inference.LibrarySearch{Flag: testutil.ORTLib(t)}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		write func(string) (string, string, error)
		want  string
	}{
		{synthetic.WriteNullModels, "null model, for benchmarks"},
		{synthetic.WriteModels, "synthetic demo model"},
	} {
		det, pose, err := tt.write(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		var r Report
		checkModels(&r, rt, Options{Device: inference.Device{Kind: inference.DeviceCPU}, DetectorModel: det, PoseModel: pose,
			Models: models.Folder{Dir: t.TempDir(), Source: models.SourceFlag}})
		var out bytes.Buffer
		if err := r.Write(&out); err != nil {
			t.Fatal(err)
		}
		if n := strings.Count(out.String(), tt.want); n != 2 || r.Failed() {
			t.Errorf("%q %d times (want 2, one per model), failed %v:\n%s", tt.want, n, r.Failed(), out.String())
		}
	}
}
