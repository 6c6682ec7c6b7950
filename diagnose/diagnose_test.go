package diagnose

import (
	"bytes"
	"strings"
	"testing"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/dgxa100"
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
