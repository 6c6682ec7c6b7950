package deploy_test

// The Collector integration test: build an OpenTelemetry Collector with the
// official builder and exactly the components config.yaml uses, run it on
// loopback with that very file, run `anonymize video` exporting OTLP to it,
// and check what comes out the other side: the span metrics on the
// Prometheus endpoint, anonymize's own and GPU metrics, and the traces as
// the Jaeger exporter sends them.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"go.yaml.in/yaml/v3"

	"github.com/anonymize-dev/anonymize/internal/otlptest"
	"github.com/anonymize-dev/anonymize/internal/synthclip"
	"github.com/anonymize-dev/anonymize/internal/testutil"
	"github.com/anonymize-dev/anonymize/models/synthetic"
	"github.com/anonymize-dev/anonymize/telemetry"
	"github.com/anonymize-dev/anonymize/telemetry/export"
	"github.com/anonymize-dev/anonymize/telemetry/gpu/gputest"
)

// builderVersion is the Collector release the test builds, the same as the
// contrib image docker-compose.yml runs.
const builderVersion = "v0.155.0"

var collectorOnce struct {
	sync.Once
	path string
	err  error
}

// collectorBinary builds the Collector, or reuses a build of the same
// manifest from the cache folder (the build takes minutes).
func collectorBinary(t *testing.T) string {
	t.Helper()
	c := &collectorOnce
	c.Do(func() { c.path, c.err = buildCollector(t) })
	if c.err != nil {
		t.Fatal(c.err)
	}
	return c.path
}

func buildCollector(t *testing.T) (string, error) {
	dir := filepath.Join(testutil.RepoRoot(t), "deploy", "otel-collector")
	manifest, err := os.ReadFile(filepath.Join(dir, "builder-config.yaml"))
	if err != nil {
		return "", err
	}
	out, err := cachedBuild(t, "otelcol-"+builderVersion, [][]byte{manifest}, func(work string) (*exec.Cmd, error) {
		// Point the manifest at the build folder and at the stub modules
		// by absolute path.
		var cfg map[string]any
		if err := yaml.Unmarshal(manifest, &cfg); err != nil {
			return nil, fmt.Errorf("builder-config.yaml: %w", err)
		}
		cfg["dist"].(map[string]any)["output_path"] = work
		var replaces []any
		for _, r := range cfg["replaces"].([]any) {
			from, to, _ := strings.Cut(r.(string), " => ")
			replaces = append(replaces, from+" => "+filepath.Join(dir, strings.TrimSpace(to)))
		}
		cfg["replaces"] = replaces
		data, _ := yaml.Marshal(cfg)
		cfgPath := filepath.Join(work, "builder-config.yaml")
		if err := os.WriteFile(cfgPath, data, 0o644); err != nil {
			return nil, err
		}
		cmd := exec.Command("go", "run", "go.opentelemetry.io/collector/cmd/builder@"+builderVersion, "--config", cfgPath)
		cmd.Dir = work
		return cmd, nil
	})
	return filepath.Join(out, "otelcol-anonymize"), err
}

// cachedBuild returns the folder of a build named name from the test
// cache, keyed by its inputs' contents and the Go version; when the cache
// has none (a build takes minutes), it runs the command that command
// returns to build into a fresh folder, and keeps that.
func cachedBuild(t *testing.T, name string, inputs [][]byte, command func(work string) (*exec.Cmd, error)) (string, error) {
	h := sha256.New()
	for _, in := range inputs {
		h.Write(in)
	}
	goVersion, _ := exec.Command("go", "env", "GOVERSION").Output()
	h.Write(goVersion)
	cache, err := testCache()
	if err != nil {
		return "", err
	}
	out := filepath.Join(cache, name+"-"+hex.EncodeToString(h.Sum(nil))[:16])
	if _, err := os.Stat(filepath.Join(out, ".complete")); err == nil {
		t.Logf("reusing %s built at %s", name, out)
		return out, nil
	}
	if err := os.MkdirAll(cache+"-work", 0o755); err != nil {
		return "", err
	}
	work, err := os.MkdirTemp(cache+"-work", name+"-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(work)
	cmd, err := command(work)
	if err != nil {
		return "", err
	}
	// The project's CI runs with -mod=readonly; each build resolves its
	// own module graph.
	cmd.Env = append(os.Environ(), "GOFLAGS=")
	var log bytes.Buffer
	cmd.Stdout, cmd.Stderr = &log, &log
	start := time.Now()
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("build %s: %v\n%s", name, err, tail(log.String(), 40))
	}
	t.Logf("built %s in %s", name, time.Since(start).Round(time.Second))
	if err := os.WriteFile(filepath.Join(work, ".complete"), nil, 0o644); err != nil {
		return "", err
	}
	os.RemoveAll(out)
	return out, os.Rename(work, out)
}

// testCache is where builds of the stack's programs are kept between test
// runs: ANONYMIZE_TEST_CACHE, or anonymize-tests in the user's cache.
func testCache() (string, error) {
	if c := os.Getenv("ANONYMIZE_TEST_CACHE"); c != "" {
		return c, nil
	}
	uc, err := os.UserCacheDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(uc, "anonymize-tests"), nil
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

type collector struct {
	otlpHTTP, otlpGRPC, prometheus string
	internal                       string // the Collector's own metrics
	traces, logs                   string // the file exporters' output
	jaeger                         *otlptest.Receiver
}

// startCollector runs the Collector with deploy/otel-collector/config.yaml
// on loopback; the Jaeger exporter sends to an OTLP receiver the test reads.
func startCollector(t *testing.T) *collector {
	t.Helper()
	jaeger, jaegerURL := otlptest.StartGRPC(t)
	c := startCollectorTo(t, strings.TrimPrefix(jaegerURL, "http://"))
	c.jaeger = jaeger
	return c
}

// startCollectorTo runs the Collector exporting traces to the OTLP gRPC
// endpoint jaeger (host:port).
func startCollectorTo(t *testing.T, jaeger string) *collector {
	t.Helper()
	bin := collectorBinary(t)
	c := &collector{traces: filepath.Join(t.TempDir(), "traces.jsonl"), logs: filepath.Join(t.TempDir(), "logs.jsonl")}
	config := filepath.Join(testutil.RepoRoot(t), "deploy", "otel-collector", "config.yaml")
	start(t, bin, func() launch {
		c.otlpHTTP, c.otlpGRPC, c.prometheus, c.internal = freeAddr(t), freeAddr(t), freeAddr(t), freeAddr(t)
		host, port, _ := net.SplitHostPort(c.internal)
		return launch{env: []string{
			"OTLP_GRPC_ENDPOINT=" + c.otlpGRPC, "OTLP_HTTP_ENDPOINT=" + c.otlpHTTP,
			"PROMETHEUS_ENDPOINT=" + c.prometheus, "JAEGER_OTLP_ENDPOINT=" + jaeger,
			"TRACES_FILE=" + c.traces, "LOGS_FILE=" + c.logs, "SPANMETRICS_FLUSH_INTERVAL=1s",
			"COLLECTOR_TELEMETRY_HOST=" + host, "COLLECTOR_TELEMETRY_PORT=" + port, "COLLECTOR_LOG_LEVEL=warn",
		}, args: []string{"--config", config}, ready: "http://" + c.prometheus + "/metrics"}
	})
	return c
}

// scrape reads the Prometheus endpoint in the text format.
func (c *collector) scrape(t *testing.T) map[string]*dto.MetricFamily {
	t.Helper()
	req, _ := http.NewRequest("GET", "http://"+c.prometheus+"/metrics", nil)
	req.Header.Set("Accept", "text/plain;version=0.0.4")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("parse the Prometheus endpoint: %v", err)
	}
	return fams
}

// sampleValue returns the value of the series of family whose labels
// include want, summed over matching series (counter or histogram count).
// hasSeries reports whether fam has a series with the wanted labels.
func hasSeries(fam *dto.MetricFamily, want map[string]string) bool {
	for _, m := range fam.GetMetric() {
		if matches(m, want) {
			return true
		}
	}
	return false
}

// matches reports whether a series has the wanted labels.
func matches(m *dto.Metric, want map[string]string) bool {
	labels := map[string]string{}
	for _, l := range m.GetLabel() {
		labels[l.GetName()] = l.GetValue()
	}
	for k, v := range want {
		if labels[k] != v {
			return false
		}
	}
	return true
}

func sampleValue(fam *dto.MetricFamily, want map[string]string) float64 {
	var sum float64
	for _, m := range fam.GetMetric() {
		if !matches(m, want) {
			continue
		}
		switch {
		case m.Counter != nil:
			sum += m.GetCounter().GetValue()
		case m.Histogram != nil:
			sum += float64(m.GetHistogram().GetSampleCount())
		case m.Gauge != nil:
			sum += m.GetGauge().GetValue()
		}
	}
	return sum
}

func anonymizeBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "anonymize")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/anonymize")
	cmd.Dir = testutil.RepoRoot(t)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build anonymize: %v\n%s", err, out)
	}
	return bin
}

// anonymizeRun is one anonymize process of a test and the exit status it
// must end with.
type anonymizeRun struct {
	args []string
	exit int
}

// runAnonymize runs the processes at once, as the pods of a sharded batch
// would, with env added to the environment (the OTLP endpoint); each must
// end with its exit status and deliver all its telemetry.
func runAnonymize(t *testing.T, env []string, runs ...anonymizeRun) {
	t.Helper()
	bin := anonymizeBinary(t)
	env = append(append(os.Environ(), "ANONYMIZE_ORT_LIB="+testutil.ORTLib(t), "ANONYMIZE_AUDIT_MODEL="+testutil.AuditModel(t)), env...)
	errs := make(chan error, len(runs))
	for _, r := range runs {
		cmd := exec.Command(bin, r.args...)
		cmd.Env = env
		go func() {
			out, err := cmd.CombinedOutput()
			switch {
			case cmd.ProcessState == nil || cmd.ProcessState.ExitCode() != r.exit:
				errs <- fmt.Errorf("anonymize %s: %v, want exit status %d\n%s", r.args[0], err, r.exit, out)
			case strings.Contains(string(out), "telemetry incomplete"):
				errs <- fmt.Errorf("anonymize %s could not deliver its telemetry:\n%s", r.args[0], out)
			default:
				errs <- nil
			}
		}()
	}
	for range runs {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

// TestCollectorIntegration is the end-to-end check of the observability
// stack's data path with a real Collector.
func TestCollectorIntegration(t *testing.T) {
	ffmpeg := testutil.Tool(t, "ffmpeg")
	testutil.ORTLib(t) // needed by the runs: said before anything starts
	col := startCollector(t)

	// A clip with people, including one drawn without a nose (mask
	// fallbacks), and the synthetic models.
	dir := t.TempDir()
	scene := synthclip.DefaultScene(640, 360, 24)
	clip := filepath.Join(dir, "clip.mp4")
	if err := scene.Write(context.Background(), clip, ffmpeg); err != nil {
		t.Fatal(err)
	}
	det, pose, err := synthetic.WriteModels(dir)
	if err != nil {
		t.Fatal(err)
	}
	// Two processes at once, as the pods of a sharded batch run: each must
	// keep its own series.
	const runs = 2
	var procs []anonymizeRun
	for i := range runs {
		procs = append(procs, anonymizeRun{args: []string{"video", "-q", "--device", "cpu", "--detector-model", det, "--pose-model", pose,
			clip, filepath.Join(dir, fmt.Sprintf("out%d.mp4", i))}})
	}
	runAnonymize(t, []string{"OTEL_EXPORTER_OTLP_ENDPOINT=http://" + col.otlpHTTP, "OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf"}, procs...)

	// CI has no GPU: the GPU gauges are produced by the same code anonymize
	// uses, on go-nvml's mock, and sent to the same Collector.
	exportFakeGPUMetrics(t, "http://"+col.otlpHTTP)

	// The span metrics connector flushes every second; wait for every frame.
	frames := float64(runs * scene.Frames)
	var fams map[string]*dto.MetricFamily
	deadline := time.Now().Add(30 * time.Second)
	for {
		fams = col.scrape(t)
		calls := fams["traces_span_metrics_calls_total"]
		if calls != nil && sampleValue(calls, map[string]string{"span_name": "encode"}) == frames {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("span metrics did not reach %v frames; have %v", frames, names(fams))
		}
		time.Sleep(200 * time.Millisecond)
	}

	t.Run("span metrics count every frame", func(t *testing.T) {
		for _, span := range []string{"process_single_frame", "person_detection", "pose_estimation", "decode", "track", "mask", "encode"} {
			for _, fam := range []string{"traces_span_metrics_calls_total", "traces_span_metrics_duration_seconds"} {
				f := fams[fam]
				if f == nil {
					t.Fatalf("%s missing; exposed: %v", fam, names(fams))
				}
				if got := sampleValue(f, map[string]string{"span_name": span, "service_name": "anonymize"}); got != frames {
					t.Errorf("%s{span_name=%q} = %v, want %v (frames processed)", fam, span, got, frames)
				}
			}
		}
	})

	t.Run("anonymize metrics", func(t *testing.T) {
		for _, name := range []string{"anonymize_detected_people", "anonymize_people_per_frame", "anonymize_frames_total",
			"anonymize_stage_duration_seconds", "anonymize_masks_total", "anonymize_mask_fallbacks_total"} {
			if fams[name] == nil {
				t.Errorf("%s not exposed; exposed: %v", name, names(fams))
			}
		}
		if f := fams["anonymize_frames_total"]; f != nil {
			// Summed over the processes' series: one series for both
			// would hold the last writer's count only.
			if got := sampleValue(f, map[string]string{"outcome": "ok"}); got != frames {
				t.Errorf("anonymize_frames_total{outcome=ok} = %v, want %v (both runs' frames)", got, frames)
			}
			instances := map[string]bool{}
			for _, m := range f.GetMetric() {
				for _, l := range m.GetLabel() {
					if l.GetName() == "instance" {
						instances[l.GetValue()] = true
					}
				}
			}
			if len(instances) != runs {
				t.Errorf("anonymize_frames_total has %d instances %v, want one per run (%d)", len(instances), instances, runs)
			}
			// A series exists from the start, at 0 until a frame fails.
			if !hasSeries(f, map[string]string{"outcome": "failed"}) {
				t.Errorf("anonymize_frames_total has no outcome=failed series: a failure panel would read No data")
			}
		}
		if f := fams["target_info"]; f == nil || len(f.GetMetric()) < runs {
			t.Errorf("target_info: %v, want a series per run", f)
		}
		for _, name := range []string{"hw_gpu_utilization_ratio", "hw_gpu_memory_usage_bytes", "hw_gpu_memory_limit_bytes",
			"anonymize_process_gpu_memory_usage_bytes"} {
			if fams[name] == nil {
				t.Errorf("GPU metric %s not exposed; exposed: %v", name, names(fams))
			}
		}
	})

	t.Run("traces nest as designed", func(t *testing.T) {
		checkNesting(t, receivedSpans(col.jaeger), runs*scene.Frames)
		data, err := os.ReadFile(col.traces)
		if err != nil || !bytes.Contains(data, []byte(`"process_single_frame"`)) {
			t.Errorf("the file exporter wrote no frame spans to %s: %v", col.traces, err)
		}
	})

	// What the dashboards and alert rules read of these is checked with a
	// real Prometheus by TestStack.
	t.Logf("metric names the Collector exposed: %v", names(fams))
}

// exportFakeGPUMetrics sends the GPU gauges of two fake H100s over OTLP.
func exportFakeGPUMetrics(t *testing.T, endpoint string) {
	t.Helper()
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
	t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
	tel, err := export.Setup(context.Background(), export.Options{
		Sinks: []export.Sink{export.SinkOTLP}, NVML: gputest.H100s(2),
		Getenv: os.Getenv, Log: slog.New(slog.DiscardHandler), ServiceVersion: "test",
	})
	if err != nil {
		t.Fatal(err)
	}
	// The people gauge too, so the GPU-memory-against-people panel has both.
	in, err := telemetry.NewInstruments()
	if err != nil {
		t.Fatal(err)
	}
	in.DetectedPeople.Record(context.Background(), 3)
	tel.Shutdown(context.Background(), 0, false)
}

func names(fams map[string]*dto.MetricFamily) []string {
	return slices.Sorted(maps.Keys(fams))
}
