package deploy_test

// Static checks of the deployment files: what can be validated without a
// Docker engine. The Collector configuration is also run for real by
// TestCollectorIntegration.

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/anonymize-dev/anonymize/internal/testutil"
)

func readYAML(t *testing.T, rel string) map[string]any {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(testutil.RepoRoot(t), rel))
	if err != nil {
		t.Fatal(err)
	}
	var v map[string]any
	if err := yaml.Unmarshal(data, &v); err != nil {
		t.Fatalf("%s does not parse: %v", rel, err)
	}
	return v
}

func m(v any) map[string]any {
	out, _ := v.(map[string]any)
	return out
}

func list(v any) []any {
	out, _ := v.([]any)
	return out
}

// pinned reports whether an image reference names a fixed version.
func pinned(image string) bool {
	if strings.Contains(image, "@sha256:") {
		return true
	}
	i := strings.LastIndex(image, ":")
	if i < 0 || strings.Contains(image[i:], "/") {
		return false
	}
	tag := image[i+1:]
	return tag != "" && tag != "latest"
}

func TestPinnedRecognisesVersions(t *testing.T) {
	for image, want := range map[string]bool{
		"ubuntu:24.04": true, "prom/prometheus:v3.5.0": true, "grafana/grafana": false,
		"grafana/grafana:latest": false, "localhost:5000/x": false, "x@sha256:abcd": true,
	} {
		if pinned(image) != want {
			t.Errorf("pinned(%q) = %v", image, !want)
		}
	}
}

var dockerArg = regexp.MustCompile(`^ARG\s+([A-Za-z_][A-Za-z0-9_]*)(?:=(.*))?$`)

func TestDockerfile(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(testutil.RepoRoot(t), "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	args := map[string]string{}
	stages := map[string]bool{}
	var entrypoint, user string
	var froms []string
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if g := dockerArg.FindStringSubmatch(line); g != nil && len(stages) == 0 {
			args[g[1]] = g[2]
		}
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		switch strings.ToUpper(fields[0]) {
		case "FROM":
			image := os.Expand(fields[1], func(k string) string { return args[k] })
			froms = append(froms, image)
			if len(fields) >= 4 && strings.EqualFold(fields[2], "AS") {
				stages[fields[3]] = true
			}
		case "ENTRYPOINT":
			entrypoint = strings.TrimSpace(strings.TrimPrefix(line, fields[0]))
		case "USER":
			user = fields[1]
		case "COPY":
			for _, f := range fields {
				if from, ok := strings.CutPrefix(f, "--from="); ok && !stages[from] && !strings.Contains(from, ":") {
					t.Errorf("COPY --from=%s names no earlier stage", from)
				}
			}
		}
	}
	for _, image := range froms {
		if image == "scratch" || stages[image] {
			continue
		}
		if !pinned(image) {
			t.Errorf("base image %q is not pinned to a version", image)
		}
	}
	for _, s := range []string{"build", "onnxruntime", "runtime", "models"} {
		if !stages[s] {
			t.Errorf("no stage %q", s)
		}
	}
	if entrypoint != `["anonymize"]` {
		t.Errorf("ENTRYPOINT %s, want [\"anonymize\"]", entrypoint)
	}
	if user == "" || user == "root" || strings.HasPrefix(user, "0") {
		t.Errorf("runtime user %q is root", user)
	}
	if !strings.Contains(args["CUDA_RUNTIME_IMAGE"], "cudnn") {
		t.Errorf("runtime image %q lacks cuDNN, which ONNX Runtime's CUDA provider needs", args["CUDA_RUNTIME_IMAGE"])
	}
}

func TestCompose(t *testing.T) {
	root := testutil.RepoRoot(t)
	compose := readYAML(t, "docker-compose.yml")
	services := m(compose["services"])
	var names []string
	for n := range services {
		names = append(names, n)
	}
	sort.Strings(names)
	if want := []string{"anonymize", "grafana", "jaeger", "otel-collector", "prometheus"}; !slices.Equal(names, want) {
		t.Fatalf("services %v, want %v", names, want)
	}
	for name, sv := range services {
		s := m(sv)
		image, _ := s["image"].(string)
		if s["build"] == nil && !pinned(image) {
			t.Errorf("service %s: image %q is not pinned to a version", name, image)
		}
		for _, v := range list(s["volumes"]) {
			spec, _ := v.(string)
			src, _, _ := strings.Cut(spec, ":")
			if !strings.HasPrefix(src, "./") {
				continue
			}
			// ./data is the user's video folder; Docker creates it.
			if src == "./data" {
				continue
			}
			if _, err := os.Stat(filepath.Join(root, src)); err != nil {
				t.Errorf("service %s mounts %s, which does not exist", name, src)
			}
		}
		if name != "anonymize" && name != "otel-collector" && s["healthcheck"] == nil {
			t.Errorf("service %s has no health check", name)
		}
	}

	job := m(services["anonymize"])
	if !slices.Contains(list(job["profiles"]), any("job")) {
		t.Error("anonymize must sit in a profile, so `docker compose up` starts only the stack")
	}
	if target := m(job["build"])["target"]; target != "runtime" {
		t.Errorf("anonymize builds target %v, want runtime", target)
	}
	devices := list(m(m(m(job["deploy"])["resources"])["reservations"])["devices"])
	if len(devices) == 0 || !slices.Contains(list(m(devices[0])["capabilities"]), any("gpu")) {
		t.Error("anonymize reserves no GPU")
	}
	env := m(job["environment"])
	if ep, _ := env["OTEL_EXPORTER_OTLP_ENDPOINT"].(string); !strings.Contains(ep, "otel-collector:4317") {
		t.Errorf("anonymize exports to %q, not the collector", ep)
	}

	// Each service reads its configuration where it is mounted.
	mountTargets := func(service string) []string {
		var out []string
		for _, v := range list(m(services[service])["volumes"]) {
			parts := strings.Split(v.(string), ":")
			out = append(out, parts[1])
		}
		return out
	}
	col := m(services["otel-collector"])
	if cmd := strings.Join(toStrings(list(col["command"])), " "); !strings.Contains(cmd, "/etc/otelcol/config.yaml") ||
		!slices.Contains(mountTargets("otel-collector"), "/etc/otelcol/config.yaml") {
		t.Errorf("collector command %q does not read the mounted config", cmd)
	}
	prom := m(services["prometheus"])
	cmd := strings.Join(toStrings(list(prom["command"])), " ")
	if !strings.Contains(cmd, "--config.file=/etc/prometheus/prometheus.yml") || !strings.Contains(cmd, "exemplar-storage") {
		t.Errorf("prometheus command %q: wrong config or no exemplar storage", cmd)
	}
	dash := readYAML(t, "deploy/grafana/provisioning/dashboards/dashboards.yaml")
	path, _ := m(m(list(dash["providers"])[0])["options"])["path"].(string)
	if !slices.Contains(mountTargets("grafana"), path) {
		t.Errorf("dashboards are provisioned from %v, which nothing is mounted at", path)
	}
}

func toStrings(vs []any) []string {
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i], _ = v.(string)
	}
	return out
}

// componentModules maps each Collector component type config.yaml may use
// to the module that provides it, as builder-config.yaml lists them.
var componentModules = map[string]string{
	"receivers/otlp":          "go.opentelemetry.io/collector/receiver/otlpreceiver",
	"processors/batch":        "go.opentelemetry.io/collector/processor/batchprocessor",
	"connectors/span_metrics": "github.com/open-telemetry/opentelemetry-collector-contrib/connector/spanmetricsconnector",
	"exporters/prometheus":    "github.com/open-telemetry/opentelemetry-collector-contrib/exporter/prometheusexporter",
	"exporters/otlp":          "go.opentelemetry.io/collector/exporter/otlpexporter",
	"exporters/file":          "github.com/open-telemetry/opentelemetry-collector-contrib/exporter/fileexporter",
	"exporters/debug":         "go.opentelemetry.io/collector/exporter/debugexporter",
}

func TestCollectorConfig(t *testing.T) {
	cfg := readYAML(t, "deploy/otel-collector/config.yaml")
	defined := map[string]bool{}
	needed := map[string]bool{}
	for _, kind := range []string{"receivers", "processors", "connectors", "exporters"} {
		for id := range m(cfg[kind]) {
			defined[kind+"/"+id] = true
			typ, _, _ := strings.Cut(id, "/")
			mod, ok := componentModules[kind+"/"+typ]
			if !ok {
				t.Errorf("%s %s: no known module builds this component type", kind, id)
			}
			needed[mod] = true
		}
	}
	pipelines := m(m(cfg["service"])["pipelines"])
	for _, want := range []string{"traces", "metrics"} {
		if pipelines[want] == nil {
			t.Errorf("no %s pipeline", want)
		}
	}
	for name, p := range pipelines {
		for _, kind := range []string{"receivers", "processors", "exporters"} {
			for _, id := range list(m(p)[kind]) {
				id := id.(string)
				if !defined[kind+"/"+id] && !defined["connectors/"+id] {
					t.Errorf("pipeline %s uses %s %s, which is not defined", name, kind, id)
				}
			}
		}
	}
	// The span metrics must reach Prometheus: the connector feeds the
	// metrics pipeline, which exports to prometheus.
	if !slices.Contains(list(m(pipelines["traces"])["exporters"]), any("span_metrics")) ||
		!slices.Contains(list(m(pipelines["metrics"])["receivers"]), any("span_metrics")) ||
		!slices.Contains(list(m(pipelines["metrics"])["exporters"]), any("prometheus")) {
		t.Error("span_metrics is not wired from the traces pipeline to the Prometheus exporter")
	}
	sm := m(m(cfg["connectors"])["span_metrics"])
	if m(sm["histogram"])["unit"] == nil || m(m(sm["histogram"])["explicit"])["buckets"] == nil || sm["namespace"] == nil {
		t.Error("span_metrics must set its histogram unit, buckets and namespace explicitly")
	}

	// Every ${env:...} has a default, so the file works as is in compose.
	raw, _ := os.ReadFile(filepath.Join(testutil.RepoRoot(t), "deploy", "otel-collector", "config.yaml"))
	for _, ref := range regexp.MustCompile(`\$\{env:[^}]*\}`).FindAllString(string(raw), -1) {
		if !strings.Contains(ref, ":-") {
			t.Errorf("%s has no default", ref)
		}
	}

	// The builder manifest builds exactly these components.
	builder := readYAML(t, "deploy/otel-collector/builder-config.yaml")
	built := map[string]bool{}
	for _, kind := range []string{"receivers", "processors", "connectors", "exporters"} {
		for _, c := range list(builder[kind]) {
			mod, _, _ := strings.Cut(m(c)["gomod"].(string), " ")
			built[mod] = true
		}
	}
	for mod := range needed {
		if !built[mod] {
			t.Errorf("config.yaml needs %s, which builder-config.yaml does not build", mod)
		}
	}
	for mod := range built {
		if !needed[mod] {
			t.Errorf("builder-config.yaml builds %s, which config.yaml does not use", mod)
		}
	}
}

func TestPrometheusAndGrafanaConfig(t *testing.T) {
	prom := readYAML(t, "deploy/prometheus/prometheus.yml")
	var targets []string
	for _, job := range list(prom["scrape_configs"]) {
		for _, sc := range list(m(job)["static_configs"]) {
			targets = append(targets, toStrings(list(m(sc)["targets"]))...)
		}
	}
	if !slices.Contains(targets, "otel-collector:8889") {
		t.Errorf("Prometheus scrapes %v, not the collector's exporter at otel-collector:8889", targets)
	}

	ds := readYAML(t, "deploy/grafana/provisioning/datasources/datasources.yaml")
	uids := map[string]map[string]any{}
	for _, d := range list(ds["datasources"]) {
		uids[m(d)["uid"].(string)] = m(d)
	}
	if uids["prometheus"] == nil || uids["jaeger"] == nil {
		t.Fatalf("data sources %v, want prometheus and jaeger", uids)
	}
	dest := list(m(uids["prometheus"]["jsonData"])["exemplarTraceIdDestinations"])
	if len(dest) == 0 || m(dest[0])["datasourceUid"] != "jaeger" {
		t.Error("Prometheus exemplars do not link to Jaeger")
	}
	// Latency panels link to traces.
	linked := false
	for _, e := range dashboardExprs(t) {
		if strings.Contains(e.expr, "traces_span_metrics_duration_seconds_bucket") {
			linked = true
		}
	}
	if !linked {
		t.Error("no latency panel from the span metrics")
	}
}
