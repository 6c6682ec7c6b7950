package deploy_test

// The whole observability stack, for real: Jaeger and Prometheus built from
// source at the versions docker-compose.yml runs (deploy/testbuild), the
// Collector of collector_test.go, each with the repository's own config,
// all on loopback. After `anonymize video` and `anonymize batch` runs it
// asks Jaeger's query API for the frames' traces and Prometheus' HTTP API
// for every expression of the Grafana dashboards and the alert rules. The
// alert rules' own unit tests (alerts_test.yml) run with promtool here too.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/prometheus/promql/parser"
	"go.yaml.in/yaml/v3"

	"github.com/anonymize-dev/anonymize/internal/synthclip"
	"github.com/anonymize-dev/anonymize/internal/testutil"
	"github.com/anonymize-dev/anonymize/models/synthetic"
)

// The stack's programs, each built from its module under deploy/testbuild
// (whose go.mod names the version and why it is that one).
var (
	jaegerBuild     = stackProgram{module: "jaeger", pkgs: []string{"github.com/jaegertracing/jaeger/cmd/jaeger"}}
	prometheusBuild = stackProgram{module: "prometheus", pkgs: []string{
		"github.com/prometheus/prometheus/cmd/prometheus", "github.com/prometheus/prometheus/cmd/promtool"}}
)

type stackProgram struct {
	module string
	pkgs   []string
	once   sync.Once
	dir    string
	err    error
}

// binary builds the program (once per test binary, and once per go.sum
// and Go version in the test cache: a build takes minutes) and returns the
// path of the named command.
func (p *stackProgram) binary(t *testing.T, name string) string {
	t.Helper()
	p.once.Do(func() { p.dir, p.err = p.build(t) })
	if p.err != nil {
		t.Fatal(p.err)
	}
	return filepath.Join(p.dir, name)
}

func (p *stackProgram) build(t *testing.T) (string, error) {
	src := filepath.Join(testutil.RepoRoot(t), "deploy", "testbuild", p.module)
	var inputs [][]byte
	for _, f := range []string{"go.mod", "go.sum"} {
		data, err := os.ReadFile(filepath.Join(src, f))
		if err != nil {
			return "", err
		}
		inputs = append(inputs, data)
	}
	return cachedBuild(t, p.module, inputs, func(work string) (*exec.Cmd, error) {
		cmd := exec.Command("go", append([]string{"build", "-mod=readonly", "-trimpath", "-o", work + "/"}, p.pkgs...)...)
		cmd.Dir = src
		return cmd, nil
	})
}

// launch says how to run a program once: its environment and arguments,
// and a URL that answers 200 once it is ready.
type launch struct {
	env, args []string
	ready     string
}

// start runs a program until the test ends. Each attempt's launch comes
// from next, with addresses picked afresh: a port freeAddr found free can
// be taken by another test's process before this one binds it, and then
// the program exits at once and is started again.
func start(t *testing.T, name string, next func() launch) {
	t.Helper()
	for attempt := 1; ; attempt++ {
		l := next()
		cmd := exec.Command(name, l.args...)
		cmd.Env = append(os.Environ(), l.env...)
		log := &syncBuffer{}
		cmd.Stdout, cmd.Stderr = log, log
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan struct{})
		go func() { cmd.Wait(); close(exited) }()
		t.Cleanup(func() {
			cmd.Process.Signal(os.Interrupt)
			<-exited
			if t.Failed() {
				t.Logf("%s log:\n%s", filepath.Base(name), tail(log.String(), 30))
			}
		})
		err := waitReady(l.ready, exited)
		if err == nil {
			return
		}
		if attempt < 3 && strings.Contains(log.String(), "address already in use") {
			t.Logf("%s: a port was taken meanwhile; again with others", filepath.Base(name))
			continue
		}
		t.Fatalf("%s did not come up (%s: %v)\n%s", filepath.Base(name), l.ready, err, tail(log.String(), 30))
	}
}

// waitReady polls url until it answers 200, the process exits, or a
// minute has passed.
func waitReady(url string, exited <-chan struct{}) error {
	deadline := time.Now().Add(time.Minute)
	for {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			err = fmt.Errorf("%s", resp.Status)
			if resp.StatusCode == http.StatusOK {
				err = nil
			}
		}
		select {
		case <-exited:
			// (An answer from someone else on the port counts for nothing.)
			return fmt.Errorf("exited (last answer: %v)", err)
		default:
		}
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(200 * time.Millisecond)
	}
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// startJaeger runs Jaeger with deploy/jaeger/config.yaml; it returns its
// OTLP gRPC endpoint (host:port) and its query API's base URL.
func startJaeger(t *testing.T) (otlp, query string) {
	t.Helper()
	bin := jaegerBuild.binary(t, "jaeger")
	config := filepath.Join(testutil.RepoRoot(t), "deploy", "jaeger", "config.yaml")
	start(t, bin, func() launch {
		var health string
		otlp, query, health = freeAddr(t), freeAddr(t), freeAddr(t)
		telemetryHost, telemetryPort, _ := net.SplitHostPort(freeAddr(t))
		return launch{env: []string{
			"JAEGER_OTLP_GRPC_ENDPOINT=" + otlp, "JAEGER_QUERY_HTTP_ENDPOINT=" + query,
			"JAEGER_QUERY_GRPC_ENDPOINT=" + freeAddr(t), "JAEGER_HEALTH_ENDPOINT=" + health,
			"JAEGER_TELEMETRY_HOST=" + telemetryHost, "JAEGER_TELEMETRY_PORT=" + telemetryPort,
			"JAEGER_LOG_LEVEL=warn",
		}, args: []string{"--config", config}, ready: "http://" + health + "/status"}
	})
	return otlp, "http://" + query
}

// startPrometheus runs Prometheus with deploy/prometheus's config and
// rules, its scrape targets pointed at col and its intervals shortened to
// a second; it returns the HTTP API's base URL.
func startPrometheus(t *testing.T, col *collector) string {
	t.Helper()
	bin := prometheusBuild.binary(t, "prometheus")
	src := filepath.Join(testutil.RepoRoot(t), "deploy", "prometheus")
	cfg := readYAML(t, "deploy/prometheus/prometheus.yml")
	global := m(cfg["global"])
	global["scrape_interval"], global["evaluation_interval"] = "1s", "1s"
	targets := map[string]string{"otel-collector": col.prometheus, "otel-collector-internal": col.internal}
	for _, sc := range list(cfg["scrape_configs"]) {
		job := m(sc)["job_name"].(string)
		addr, ok := targets[job]
		if !ok {
			t.Fatalf("prometheus.yml scrapes %q, which this test does not know", job)
		}
		for _, st := range list(m(sc)["static_configs"]) {
			m(st)["targets"] = []string{addr}
		}
	}
	dir := t.TempDir()
	data, _ := yaml.Marshal(cfg)
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, f := range list(cfg["rule_files"]) {
		copyFile(t, filepath.Join(src, f.(string)), filepath.Join(dir, f.(string)), 0o644)
	}
	var addr string
	start(t, bin, func() launch {
		addr = freeAddr(t)
		// The flags docker-compose.yml gives, but for the paths.
		return launch{args: []string{
			"--config.file=" + filepath.Join(dir, "prometheus.yml"), "--enable-feature=exemplar-storage",
			"--storage.tsdb.path=" + filepath.Join(dir, "data"), "--web.listen-address=" + addr, "--log.level=warn",
		}, ready: "http://" + addr + "/-/ready"}
	})
	return "http://" + addr
}

// TestAlertRules runs promtool on the rules: they load, and their unit
// tests in alerts_test.yml pass.
func TestAlertRules(t *testing.T) {
	if testing.Short() {
		t.Skip("builds Prometheus (minutes); not in -short")
	}
	promtool := prometheusBuild.binary(t, "promtool")
	dir := filepath.Join(testutil.RepoRoot(t), "deploy", "prometheus")
	for _, args := range [][]string{
		{"check", "config", "prometheus.yml"},
		{"check", "rules", "alerts.yml"},
		{"test", "rules", "alerts_test.yml"},
	} {
		cmd := exec.Command(promtool, args...)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		} else {
			t.Logf("promtool %s:\n%s", strings.Join(args, " "), out)
		}
	}
}

// TestStack runs anonymize into the stack and reads it back the way
// Grafana and an operator would.
func TestStack(t *testing.T) {
	if testing.Short() {
		t.Skip("builds Jaeger and Prometheus (minutes); not in -short")
	}
	ffmpeg := testutil.Tool(t, "ffmpeg")
	testutil.ORTLib(t) // needed by the runs: said before anything starts
	jaegerOTLP, jaegerAPI := startJaeger(t)
	col := startCollectorTo(t, jaegerOTLP)
	promAPI := startPrometheus(t, col)

	dir := t.TempDir()
	scene := synthclip.DefaultScene(640, 360, 24)
	in := filepath.Join(dir, "in")
	if err := os.MkdirAll(in, 0o755); err != nil {
		t.Fatal(err)
	}
	clip := filepath.Join(in, "clip.mp4")
	if err := scene.Write(context.Background(), clip, ffmpeg); err != nil {
		t.Fatal(err)
	}
	// The batch's second file is not a video: it fails, the batch goes on
	// and exits 3, and the failure alerts.
	if err := os.WriteFile(filepath.Join(in, "broken.mp4"), []byte("not a video"), 0o644); err != nil {
		t.Fatal(err)
	}
	det, pose, err := synthetic.WriteModels(dir)
	if err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	// A video run and a batch run at once, as two pods would.
	models := []string{"-q", "--device", "cpu", "--detector-model", det, "--pose-model", pose}
	runAnonymize(t, []string{"OTEL_EXPORTER_OTLP_ENDPOINT=http://" + col.otlpGRPC, "OTEL_EXPORTER_OTLP_PROTOCOL=grpc", "OTEL_METRIC_EXPORT_INTERVAL=1000"},
		anonymizeRun{args: append(append([]string{"video"}, models...), clip, filepath.Join(dir, "out.mp4"))},
		anonymizeRun{args: append(append([]string{"batch"}, models...), in, filepath.Join(dir, "batch-out")), exit: 3})
	exportFakeGPUMetrics(t, "http://"+col.otlpHTTP)
	frames := 2 * scene.Frames // the video's, and the batch's good file

	prom := &promClient{t: t, base: promAPI}
	// Wait until Prometheus has scraped every frame and the span metrics.
	waitFor(t, "Prometheus to scrape every frame", func() (bool, string) {
		got := prom.scalar(`sum(anonymize_frames_total{outcome="ok"})`)
		spans := prom.scalar(`sum(traces_span_metrics_calls_total{span_name="encode"})`)
		gpu := prom.scalar(`count(hw_gpu_memory_usage_bytes)`)
		return got == float64(frames) && spans == float64(frames) && gpu > 0,
			fmt.Sprintf("frames %v, encode spans %v, GPU series %v; want %d, %d, >0", got, spans, gpu, frames, frames)
	})
	// Two more scrapes, so every counter has a rate over the run.
	time.Sleep(2500 * time.Millisecond)
	end := time.Now()

	t.Run("Jaeger has every frame's trace, nested and linked to its run", func(t *testing.T) {
		var spans []span
		waitFor(t, "Jaeger to hold every frame's trace", func() (bool, string) {
			spans = jaegerSpans(t, jaegerAPI, began, end)
			roots := 0
			for _, s := range spans {
				if s.name == "process_single_frame" {
					roots++
				}
			}
			return roots == frames, fmt.Sprintf("%d frame traces, want %d", roots, frames)
		})
		checkNesting(t, spans, frames)
	})

	t.Run("the failed batch file alerts, its log record names the trace, Jaeger has it", func(t *testing.T) {
		// The operator's path: an alert names the instance; its log
		// records (the Collector's log file here) carry the trace id;
		// Jaeger shows that trace.
		var firing map[string]string
		waitFor(t, "the failure alerts to fire", func() (bool, string) {
			firing = prom.firing()
			return firing["AnonymizeRunFailed"] != "" && firing["AnonymizeBatchFileFailed"] != "", fmt.Sprintf("firing: %v", firing)
		})
		if firing["AnonymizeRunFailed"] != firing["AnonymizeBatchFileFailed"] {
			t.Errorf("the two alerts name different instances: %v", firing)
		}
		var rec logRecord
		waitFor(t, "the batch's log record in the Collector's log file", func() (bool, string) {
			recs := readLogRecords(t, col.logs)
			for _, r := range recs {
				if r.body == "file failed" {
					rec = r
					return true, ""
				}
			}
			return false, fmt.Sprintf("%d records, none 'file failed'", len(recs))
		})
		if rec.instance != firing["AnonymizeBatchFileFailed"] {
			t.Errorf("the log record's service.instance.id %q is not the alert's instance %q", rec.instance, firing["AnonymizeBatchFileFailed"])
		}
		if rec.traceID == "" {
			t.Fatal("the 'file failed' record has no trace id")
		}
		names := jaegerTrace(t, jaegerAPI, rec.traceID)
		if !slices.Contains(names, "anonymize_batch") {
			t.Errorf("Jaeger's trace %s (from the log record) has spans %v, want the anonymize_batch run span", rec.traceID, names)
		}
	})

	t.Run("every dashboard and alert expression has data", func(t *testing.T) {
		var exprs []panelExpr
		for _, e := range dashboardExprs(t) {
			// Grafana's $__rate_interval: four scrape intervals at least.
			e.expr = grafanaBuiltin.ReplaceAllString(e.expr, "15s")
			exprs = append(exprs, e)
		}
		exprs = append(exprs, alertOperands(t)...)
		for _, e := range exprs {
			n := prom.rangeSeries(e.expr, began, end)
			if n == 0 {
				t.Errorf("%s: no data over the run (%s)", e.panel, e.expr)
			} else {
				t.Logf("%s: %d series (%s)", e.panel, n, strings.Join(strings.Fields(e.expr), " "))
			}
		}
	})
}

// alertOperands returns what each alert rule compares, without the
// comparison: a quiet rule returns nothing, so "has data" is asked of the
// quantities it reads (`x > 0.9` becomes `x`; `a and b`, a and b).
func alertOperands(t *testing.T) []panelExpr {
	t.Helper()
	var rules struct {
		Groups []struct {
			Rules []struct {
				Alert string `yaml:"alert"`
				Expr  string `yaml:"expr"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	data, err := os.ReadFile(filepath.Join(testutil.RepoRoot(t), "deploy", "prometheus", "alerts.yml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(data, &rules); err != nil {
		t.Fatalf("alerts.yml: %v", err)
	}
	var out []panelExpr
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			ast, err := parser.NewParser(parser.Options{}).ParseExpr(r.Expr)
			if err != nil {
				t.Fatalf("alert %s: %v", r.Alert, err)
			}
			ops := operands(ast)
			for i, op := range ops {
				name := "alert " + r.Alert
				if len(ops) > 1 {
					name += " operand " + strconv.Itoa(i+1)
				}
				out = append(out, panelExpr{panel: name, expr: op.String()})
			}
		}
	}
	if len(out) == 0 {
		t.Fatal("no alert rules in alerts.yml")
	}
	return out
}

func operands(e parser.Expr) []parser.Expr {
	switch e := e.(type) {
	case *parser.ParenExpr:
		return operands(e.Expr)
	case *parser.BinaryExpr:
		switch {
		case e.Op == parser.LAND || e.Op == parser.LUNLESS || e.Op == parser.LOR:
			return append(operands(e.LHS), operands(e.RHS)...)
		case e.Op.IsComparisonOperator():
			if _, ok := e.RHS.(*parser.NumberLiteral); ok {
				return operands(e.LHS)
			}
			if _, ok := e.LHS.(*parser.NumberLiteral); ok {
				return operands(e.RHS)
			}
		}
	}
	return []parser.Expr{e}
}

func waitFor(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s: %s", what, state)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// getJSON decodes the JSON answer of a GET into v.
func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: %s: %v", url, resp.Status, err)
	}
}

// promClient asks Prometheus' HTTP API.
type promClient struct {
	t    *testing.T
	base string
}

type promResponse struct {
	Status string `json:"status"`
	Error  string `json:"error"`
	Data   struct {
		Result []struct {
			Value  []any   `json:"value"`
			Values [][]any `json:"values"`
		} `json:"result"`
	} `json:"data"`
}

func (c *promClient) get(path string, q url.Values) promResponse {
	c.t.Helper()
	var r promResponse
	getJSON(c.t, c.base+path+"?"+q.Encode(), &r)
	if r.Status != "success" {
		c.t.Errorf("Prometheus %s %s: %s", path, q.Get("query"), r.Error)
	}
	return r
}

// scalar returns the single value of an instant query now, or -1.
func (c *promClient) scalar(query string) float64 {
	c.t.Helper()
	r := c.get("/api/v1/query", url.Values{"query": {query}})
	if len(r.Data.Result) != 1 || len(r.Data.Result[0].Value) != 2 {
		return -1
	}
	v, _ := strconv.ParseFloat(r.Data.Result[0].Value[1].(string), 64)
	return v
}

// rangeSeries returns how many series a query returns over [from, to].
func (c *promClient) rangeSeries(query string, from, to time.Time) int {
	c.t.Helper()
	r := c.get("/api/v1/query_range", url.Values{
		"query": {query}, "step": {"1"},
		"start": {strconv.FormatInt(from.Unix(), 10)}, "end": {strconv.FormatInt(to.Unix()+1, 10)},
	})
	return len(r.Data.Result)
}

// jaegerSpans reads anonymize's traces from Jaeger's query API (the one its
// UI uses), as spans with their parents and links.
func jaegerSpans(t *testing.T, api string, from, to time.Time) []span {
	t.Helper()
	q := url.Values{
		"service": {"anonymize"}, "limit": {"1000"},
		"start": {strconv.FormatInt(from.Add(-time.Minute).UnixMicro(), 10)},
		"end":   {strconv.FormatInt(to.Add(time.Minute).UnixMicro(), 10)},
	}
	var body struct {
		Data []struct {
			Spans []struct {
				TraceID       string `json:"traceID"`
				SpanID        string `json:"spanID"`
				OperationName string `json:"operationName"`
				References    []struct {
					RefType string `json:"refType"`
					TraceID string `json:"traceID"`
					SpanID  string `json:"spanID"`
				} `json:"references"`
			} `json:"spans"`
		} `json:"data"`
		Errors []any `json:"errors"`
	}
	getJSON(t, api+"/api/traces?"+q.Encode(), &body)
	if len(body.Errors) > 0 {
		t.Fatalf("Jaeger /api/traces: %v", body.Errors)
	}
	var out []span
	for _, tr := range body.Data {
		for _, s := range tr.Spans {
			sp := span{name: s.OperationName, id: s.SpanID, trace: s.TraceID}
			for _, r := range s.References {
				// The parent is the reference in the span's own trace;
				// a link (to the run's span) points into another one.
				if r.RefType == "CHILD_OF" && r.TraceID == s.TraceID && sp.parent == "" {
					sp.parent = r.SpanID
				} else {
					sp.links = append(sp.links, r.SpanID)
				}
			}
			out = append(out, sp)
		}
	}
	return out
}

// firing returns the alerts firing now, each with its instance label.
func (c *promClient) firing() map[string]string {
	c.t.Helper()
	var body struct {
		Data struct {
			Alerts []struct {
				Labels map[string]string `json:"labels"`
				State  string            `json:"state"`
			} `json:"alerts"`
		} `json:"data"`
	}
	getJSON(c.t, c.base+"/api/v1/alerts", &body)
	out := map[string]string{}
	for _, a := range body.Data.Alerts {
		if a.State == "firing" {
			out[a.Labels["alertname"]] = a.Labels["instance"]
		}
	}
	return out
}

type logRecord struct {
	body, traceID, instance string
}

// readLogRecords reads the Collector's log file: OTLP JSON, a request
// per line.
func readLogRecords(t *testing.T, path string) []logRecord {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	type kv struct {
		Key   string `json:"key"`
		Value struct {
			StringValue string `json:"stringValue"`
		} `json:"value"`
	}
	var out []logRecord
	for _, line := range bytes.Split(data, []byte("\n")) {
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		var req struct {
			ResourceLogs []struct {
				Resource struct {
					Attributes []kv `json:"attributes"`
				} `json:"resource"`
				ScopeLogs []struct {
					LogRecords []struct {
						Body struct {
							StringValue string `json:"stringValue"`
						} `json:"body"`
						TraceID string `json:"traceId"`
					} `json:"logRecords"`
				} `json:"scopeLogs"`
			} `json:"resourceLogs"`
		}
		if err := json.Unmarshal(line, &req); err != nil {
			t.Fatalf("the Collector's log file: %v", err)
		}
		for _, rl := range req.ResourceLogs {
			var instance string
			for _, a := range rl.Resource.Attributes {
				if a.Key == "service.instance.id" {
					instance = a.Value.StringValue
				}
			}
			for _, sl := range rl.ScopeLogs {
				for _, r := range sl.LogRecords {
					out = append(out, logRecord{body: r.Body.StringValue, traceID: r.TraceID, instance: instance})
				}
			}
		}
	}
	return out
}

// jaegerTrace returns the span names of one trace, from Jaeger's API.
func jaegerTrace(t *testing.T, api, traceID string) []string {
	t.Helper()
	var body struct {
		Data []struct {
			Spans []struct {
				OperationName string `json:"operationName"`
			} `json:"spans"`
		} `json:"data"`
	}
	getJSON(t, api+"/api/traces/"+traceID, &body)
	var names []string
	for _, tr := range body.Data {
		for _, s := range tr.Spans {
			names = append(names, s.OperationName)
		}
	}
	return names
}
