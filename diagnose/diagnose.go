package diagnose

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os/exec"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"gocv.io/x/gocv"

	"github.com/anonymize-dev/anonymize/detect"
	"github.com/anonymize-dev/anonymize/inference"
	"github.com/anonymize-dev/anonymize/internal/digest"
	"github.com/anonymize-dev/anonymize/models"
	"github.com/anonymize-dev/anonymize/models/onnxgraph"
	"github.com/anonymize-dev/anonymize/models/synthetic"
	"github.com/anonymize-dev/anonymize/pose"
	"github.com/anonymize-dev/anonymize/video"
)

// Status grades one check.
type Status string

const (
	OK   Status = "ok"
	Info Status = "info"
	Warn Status = "warn" // works, but worse than it could
	Fail Status = "FAIL" // `anonymize video` cannot run
)

// Check is one line of the report.
type Check struct {
	Section string
	Name    string
	Status  Status
	Detail  string
}

// Report is the outcome of Run.
type Report struct {
	Checks []Check
}

func (r *Report) add(section, name string, st Status, format string, args ...any) {
	r.Checks = append(r.Checks, Check{Section: section, Name: name, Status: st, Detail: fmt.Sprintf(format, args...)})
}

// Failed reports whether anything `anonymize video` needs is missing.
func (r Report) Failed() bool {
	for _, c := range r.Checks {
		if c.Status == Fail {
			return true
		}
	}
	return false
}

// Write prints the report grouped by section.
func (r Report) Write(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	section := ""
	for _, c := range r.Checks {
		if c.Section != section {
			if section != "" {
				fmt.Fprintln(tw)
			}
			section = c.Section
			fmt.Fprintf(tw, "%s\n", section)
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", c.Status, c.Name, c.Detail)
	}
	return tw.Flush()
}

// Options says what to check.
type Options struct {
	Library       inference.LibrarySearch
	Device        inference.Device
	Models        models.Folder
	DetectorModel string
	PoseModel     string
	// NVML is the NVML interface; nil uses the real library.
	NVML nvml.Interface
}

// Run performs every check. It never stops early: the point is to see
// everything that is wrong at once.
func Run(ctx context.Context, o Options) Report {
	var r Report
	checkOpenCV(&r)
	checkTools(ctx, &r)
	rt := checkORT(&r, o)
	checkNVML(&r, o.NVML)
	checkModels(&r, rt, o)
	return r
}

func checkOpenCV(r *Report) {
	const s = "OpenCV"
	r.add(s, "version", OK, "%s", gocv.OpenCVVersion())
	readers, writers := OpenCVBackends()
	st := OK
	if !slices.Contains(readers, "FFMPEG") {
		st = Fail
	}
	r.add(s, "read back-ends", st, "%s", strings.Join(readers, ", "))
	r.add(s, "write back-ends", Info, "%s (used only when ffmpeg is missing)", strings.Join(writers, ", "))
}

func checkTools(ctx context.Context, r *Report) {
	const s = "ffmpeg"
	for _, tool := range []string{"ffmpeg", "ffprobe"} {
		path, err := exec.LookPath(tool)
		if err != nil {
			detail := "not found: output falls back to OpenCV's mp4v writer without audio; install ffmpeg (apt-get install ffmpeg)"
			if tool == "ffprobe" {
				detail = "not found: frame rates are read from OpenCV as floats; install ffmpeg"
			}
			r.add(s, tool, Warn, "%s", detail)
			continue
		}
		r.add(s, tool, OK, "%s (%s)", firstOutputLine(ctx, path, "-version"), path)
	}
	path, err := exec.LookPath("ffmpeg")
	if err != nil {
		return
	}
	// Each encoder is tried on a small test encode: NVENC is compiled
	// into most ffmpeg builds but works only with an NVIDIA GPU that has
	// the video engine (H100 and H200 do not) and its driver library.
	for _, codec := range []video.Codec{video.CodecX264, video.CodecH264NVENC, video.CodecHEVCNVENC} {
		err := video.ProbeCodec(ctx, path, codec)
		switch {
		case err == nil:
			r.add(s, string(codec), OK, "encodes")
		case codec == video.CodecX264:
			r.add(s, string(codec), Fail, "ffmpeg cannot encode with libx264 (%v): install a build with it (Debian's ffmpeg has it)", err)
		default:
			r.add(s, string(codec), Info, "not usable here (%v): --encoder auto uses libx264", err)
		}
	}
}

func firstOutputLine(ctx context.Context, path string, args ...string) string {
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(cctx, path, args...).Output()
	if err != nil {
		return "unknown version: " + err.Error()
	}
	line, _, _ := bufio.NewReader(strings.NewReader(string(out))).ReadLine()
	return strings.TrimSpace(string(line))
}

func checkORT(r *Report, o Options) *inference.Runtime {
	const s = "ONNX Runtime"
	rt, err := inference.Load(o.Library, nil)
	if err != nil {
		r.add(s, "library", Fail, "%v", err)
		return nil
	}
	r.add(s, "library", OK, "%s (%s, found via %s)", rt.Version, rt.Library, rt.Source)
	probe, err := probeModel()
	if err != nil {
		r.add(s, "providers", Fail, "cannot build the probe model: %v", err)
		return rt
	}
	if err := rt.ProbeProvider(inference.Device{Kind: inference.DeviceCPU}, probe); err != nil {
		r.add(s, inference.ProviderCPU, Fail, "%v", err)
	} else {
		r.add(s, inference.ProviderCPU, OK, "loads")
	}
	id := 0
	if o.Device.Kind == inference.DeviceCUDA || o.Device.Kind == inference.DeviceTensorRT {
		id = o.Device.ID
	}
	for _, p := range []struct {
		kind inference.DeviceKind
		name string
	}{{inference.DeviceCUDA, inference.ProviderCUDA}, {inference.DeviceTensorRT, inference.ProviderTensorRT}} {
		if err := rt.ProbeProvider(inference.Device{Kind: p.kind, ID: id}, probe); err != nil {
			// Only what the user asked for by name is a failure: CUDA
			// for --device cuda; TensorRT falls back to CUDA.
			st := Info
			if o.Device.Kind == inference.DeviceCUDA && p.kind == inference.DeviceCUDA {
				st = Fail
			}
			r.add(s, p.name, st, "does not load on device %d: %v", id, err)
		} else {
			r.add(s, p.name, OK, "loads on device %d", id)
		}
	}
	return rt
}

// probeModel is a one-node model: enough for a provider to load and
// claim a node, so its libraries are really exercised.
func probeModel() ([]byte, error) {
	g := onnxgraph.New("anonymize_doctor_probe")
	x := g.Input("x", onnxgraph.Float32, onnxgraph.Fixed(1), onnxgraph.Fixed(4))
	g.Node("Relu", []string{x}, []string{"y"})
	g.Output("y", onnxgraph.Float32, onnxgraph.Fixed(1), onnxgraph.Fixed(4))
	return g.Marshal(13)
}

func checkNVML(r *Report, lib nvml.Interface) {
	const s = "NVIDIA GPU (NVML)"
	if lib == nil {
		lib = nvml.New()
	}
	if ret := lib.Init(); ret != nvml.SUCCESS {
		r.add(s, "NVML", Info, "not usable (%s): no NVIDIA driver here; GPU metrics will be off", nvml.ErrorString(ret))
		return
	}
	defer lib.Shutdown()
	driver, _ := lib.SystemGetDriverVersion()
	n, ret := lib.DeviceGetCount()
	if ret != nvml.SUCCESS {
		r.add(s, "NVML", Warn, "driver %s, but cannot count devices: %s", driver, nvml.ErrorString(ret))
		return
	}
	r.add(s, "NVML", OK, "driver %s, %d GPU(s)", driver, n)
	for i := 0; i < n; i++ {
		d, ret := lib.DeviceGetHandleByIndex(i)
		if ret != nvml.SUCCESS {
			r.add(s, fmt.Sprintf("GPU %d", i), Warn, "%s", nvml.ErrorString(ret))
			continue
		}
		name, _ := d.GetName()
		mem, _ := d.GetMemoryInfo()
		r.add(s, fmt.Sprintf("GPU %d", i), OK, "%s, %.1f GiB memory, %.1f GiB free",
			name, float64(mem.Total)/(1<<30), float64(mem.Free)/(1<<30))
	}
}

func checkModels(r *Report, rt *inference.Runtime, o Options) {
	const s = "Models"
	dir, source := o.Models.Dir, o.Models.Source
	r.add(s, "folder", Info, "%s (from %s)", dir, source)
	for _, m := range models.Registry {
		override := o.DetectorModel
		if m.Role == models.RolePose {
			override = o.PoseModel
		}
		path, err := models.Find(m.Role, override, dir, source)
		if err != nil {
			r.add(s, string(m.Role), Fail, "%v", err)
			continue
		}
		sum, _, err := digest.FileSHA256(path)
		if err != nil {
			r.add(s, string(m.Role), Fail, "%s: %v", path, err)
			continue
		}
		r.add(s, string(m.Role), OK, "%s sha256 %s", path, sum)
		if rt == nil {
			continue
		}
		mi, err := rt.ReadModelInfo(path)
		if err != nil {
			r.add(s, "", Fail, "%v", err)
			continue
		}
		r.add(s, "", Info, "inputs: %s", tensorList(mi.Inputs))
		r.add(s, "", Info, "outputs: %s", tensorList(mi.Outputs))
		if _, err := m.Contract.Check(mi.Inputs, mi.Outputs); err != nil {
			r.add(s, "", Fail, "%v", err)
			continue
		} else if mi.Meta[synthetic.NullMetadataKey] == "true" {
			r.add(s, "", Info, "null model, for benchmarks: fits the contract and answers the same people whatever the picture")
		} else if mi.Synthetic() {
			r.add(s, "", Warn, "synthetic demo model: fits the contract but does not find real people")
		} else {
			r.add(s, "", OK, "fits the %s contract", m.Contract.Model)
		}
		if err := selfTest(rt, m, path); err != nil {
			r.add(s, "", Fail, "%v", err)
		} else {
			r.add(s, "", OK, "answers finite numbers on a test picture (CPU)")
		}
	}
}

// selfTest runs the checks `anonymize video` runs when it loads the
// model: a contract that fits can still answer NaN for every frame (a
// DETR traced with its pixel_mask reversed does), which would read as
// "nobody here".
func selfTest(rt *inference.Runtime, m models.Model, path string) error {
	sess, err := rt.OpenSession(inference.SessionOptions{Role: string(m.Role), Path: path, Contract: m.Contract,
		Device: inference.Device{Kind: inference.DeviceCPU}})
	if err != nil {
		return err
	}
	defer sess.Close()
	ctx := context.Background()
	if m.Role == models.RolePose {
		cfg := pose.DefaultConfig()
		cfg.FixedBatch = pose.FixedBatch(sess.Binding)
		return pose.SelfTest(ctx, sess, cfg)
	}
	cfg := detect.DefaultConfig()
	if err := detect.CheckModel(sess.Binding, cfg); err != nil {
		return err
	}
	return detect.SelfTest(ctx, sess, cfg)
}

func tensorList(ts []models.TensorInfo) string {
	parts := make([]string, len(ts))
	for i, t := range ts {
		parts[i] = t.String()
	}
	return strings.Join(parts, ", ")
}
