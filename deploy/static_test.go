package deploy_test

// Static checks of the deployment files: what can be validated without a
// Docker engine. The Collector configuration is also run for real by
// TestCollectorIntegration.

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	dockerparser "github.com/moby/buildkit/frontend/dockerfile/parser"
	"go.yaml.in/yaml/v3"
	"golang.org/x/mod/modfile"

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

// TestDockerfile parses the Dockerfile with BuildKit's own parser.
func TestDockerfile(t *testing.T) {
	f, err := os.Open(filepath.Join(testutil.RepoRoot(t), "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	res, err := dockerparser.Parse(f)
	if err != nil {
		t.Fatalf("Dockerfile does not parse: %v", err)
	}
	stages, metaArgs, err := instructions.Parse(res.AST, nil)
	if err != nil {
		t.Fatalf("Dockerfile instructions: %v", err)
	}
	args := map[string]string{}
	for _, a := range metaArgs {
		for _, kv := range a.Args {
			if kv.Value != nil {
				args[kv.Key] = *kv.Value
			}
		}
	}
	named := map[string]bool{}
	for _, st := range stages {
		image := os.Expand(st.BaseName, func(k string) string { return args[k] })
		if image != "scratch" && !named[image] && !pinned(image) {
			t.Errorf("stage %q: base image %q is not pinned to a version", st.Name, image)
		}
		for _, c := range st.Commands {
			if cp, ok := c.(*instructions.CopyCommand); ok && cp.From != "" && !named[cp.From] {
				t.Errorf("stage %q copies from %q, which is no earlier stage", st.Name, cp.From)
			}
		}
		named[st.Name] = true
	}
	for _, want := range []string{"build", "onnxruntime", "runtime", "models"} {
		if !named[want] {
			t.Errorf("no stage %q", want)
		}
	}
	var runtime instructions.Stage
	for _, st := range stages {
		if st.Name == "runtime" {
			runtime = st
		}
	}
	var entrypoint []string
	user := ""
	env := map[string]string{}
	var copied []string
	for _, c := range runtime.Commands {
		switch c := c.(type) {
		case *instructions.EnvCommand:
			for _, kv := range c.Env {
				env[kv.Key] = kv.Value
			}
		case *instructions.CopyCommand:
			copied = append(copied, c.DestPath)
		case *instructions.EntrypointCommand:
			entrypoint = c.CmdLine
			if c.PrependShell {
				t.Error("ENTRYPOINT in shell form: signals would not reach anonymize")
			}
		case *instructions.UserCommand:
			user = c.User
		}
	}
	if !slices.Equal(entrypoint, []string{"anonymize"}) {
		t.Errorf("runtime ENTRYPOINT %v, want [anonymize]", entrypoint)
	}
	if user == "" || user == "root" || strings.HasPrefix(user, "0") {
		t.Errorf("runtime user %q is root", user)
	}
	// The leak audit is on by default: the image carries its model where
	// the variable points.
	if m := env["ANONYMIZE_AUDIT_MODEL"]; m == "" || !slices.Contains(copied, m) {
		t.Errorf("ANONYMIZE_AUDIT_MODEL=%q is not a file the runtime stage copies in (%v)", m, copied)
	}
	// The packaging the image test replays is the build's, and the image
	// checks that it starts.
	runs := func(stage string) string {
		var all []string
		for _, st := range stages {
			if st.Name != stage {
				continue
			}
			for _, c := range st.Commands {
				if r, ok := c.(*instructions.RunCommand); ok {
					all = append(all, strings.Join(r.CmdLine, " "))
				}
			}
		}
		return strings.Join(all, "\n")
	}
	if !strings.Contains(runs("build"), "scripts/runtime-packages.sh /out/anonymize") {
		t.Error("the build stage does not list the runtime packages with scripts/runtime-packages.sh (what TestImagePackaging replays)")
	}
	rt := runs("runtime")
	for _, want := range []string{"ldd /usr/local/bin/anonymize", "libonnxruntime_providers_tensorrt.so", "not found", "anonymize version", "anonymize doctor --device cpu", "libnvinfer10"} {
		if !strings.Contains(rt, want) {
			t.Errorf("the runtime stage's checks lack %q", want)
		}
	}
	if !strings.Contains(args["CUDA_RUNTIME_IMAGE"], "cudnn") {
		t.Errorf("runtime image %q lacks cuDNN, which ONNX Runtime's CUDA provider needs", args["CUDA_RUNTIME_IMAGE"])
	}
}

// TestCompose loads docker-compose.yml with the Compose specification's
// own loader (schema validation, interpolation, profiles).
func TestCompose(t *testing.T) {
	root := testutil.RepoRoot(t)
	opts, err := cli.NewProjectOptions([]string{filepath.Join(root, "docker-compose.yml")},
		cli.WithWorkingDirectory(root), cli.WithProfiles([]string{"job"}), cli.WithEnv([]string{}),
		cli.WithResolvedPaths(true))
	if err != nil {
		t.Fatal(err)
	}
	project, err := cli.ProjectFromOptions(context.Background(), opts)
	if err != nil {
		t.Fatalf("docker-compose.yml does not load: %v", err)
	}
	var names []string
	for n := range project.Services {
		names = append(names, n)
	}
	sort.Strings(names)
	if want := []string{"anonymize", "grafana", "jaeger", "otel-collector", "prometheus"}; !slices.Equal(names, want) {
		t.Fatalf("services %v, want %v", names, want)
	}
	mounts := map[string][]string{}
	for name, s := range project.Services {
		if s.Build == nil && !pinned(s.Image) {
			t.Errorf("service %s: image %q is not pinned to a version", name, s.Image)
		}
		for _, v := range s.Volumes {
			if v.Type != "bind" {
				continue
			}
			mounts[name] = append(mounts[name], v.Target)
			// ./data is the user's video folder: it is in the repository
			// (empty but for .gitkeep), so Docker does not create it as root.
			if _, err := os.Stat(v.Source); err != nil {
				t.Errorf("service %s mounts %s, which does not exist", name, v.Source)
			}
		}
		if name != "anonymize" && name != "otel-collector" && s.HealthCheck == nil {
			t.Errorf("service %s has no health check", name)
		}
	}

	job := project.Services["anonymize"]
	if !slices.Contains(job.Profiles, "job") {
		t.Error("anonymize must sit in a profile, so `docker compose up` starts only the stack")
	}
	if job.Build == nil || job.Build.Target != "runtime" {
		t.Errorf("anonymize must build the Dockerfile's runtime target")
	}
	gpu := false
	if job.Deploy != nil && job.Deploy.Resources.Reservations != nil {
		for _, d := range job.Deploy.Resources.Reservations.Devices {
			gpu = gpu || slices.Contains(d.Capabilities, "gpu")
		}
	}
	if !gpu {
		t.Error("anonymize reserves no GPU")
	}
	if ep := job.Environment["OTEL_EXPORTER_OTLP_ENDPOINT"]; ep == nil || !strings.Contains(*ep, "otel-collector:4317") {
		t.Errorf("anonymize does not export to the collector")
	}
	// The job writes ./data as the invoking user, and keeps its caches
	// there: the image's user owns nothing in a fresh clone.
	if job.User != "1000:1000" {
		t.Errorf("anonymize runs as %q, want the invoking user (ANONYMIZE_USER, 1000:1000 by default)", job.User)
	}
	if c := job.Environment["XDG_CACHE_HOME"]; c == nil || !strings.HasPrefix(*c, "/data/") {
		t.Errorf("anonymize's cache folder %v is not under /data, which its user can write", c)
	}
	if _, err := os.Stat(filepath.Join(root, "data", ".gitkeep")); err != nil {
		t.Errorf("./data is not in the repository: Docker would create it owned by root: %v", err)
	}

	// Each service reads its configuration where it is mounted.
	col := project.Services["otel-collector"]
	if !strings.Contains(strings.Join(col.Command, " "), "/etc/otelcol/config.yaml") ||
		!slices.Contains(mounts["otel-collector"], "/etc/otelcol/config.yaml") {
		t.Errorf("collector command %v does not read the mounted config", col.Command)
	}
	prom := strings.Join(project.Services["prometheus"].Command, " ")
	if !strings.Contains(prom, "--config.file=/etc/prometheus/prometheus.yml") || !strings.Contains(prom, "exemplar-storage") {
		t.Errorf("prometheus command %q: wrong config or no exemplar storage", prom)
	}
	jaeger := project.Services["jaeger"]
	if !strings.Contains(strings.Join(jaeger.Command, " "), "/etc/jaeger/config.yaml") ||
		!slices.Contains(mounts["jaeger"], "/etc/jaeger/config.yaml") {
		t.Errorf("jaeger command %v does not read the mounted deploy/jaeger/config.yaml", jaeger.Command)
	}
	// The rule files Prometheus is told to load are mounted next to its config.
	for _, f := range list(readYAML(t, "deploy/prometheus/prometheus.yml")["rule_files"]) {
		if !slices.Contains(mounts["prometheus"], "/etc/prometheus/"+f.(string)) {
			t.Errorf("prometheus.yml loads %s, which compose does not mount", f)
		}
	}
	// The Collector writes anonymize's logs into ./data, as its user.
	if lf := col.Environment["LOGS_FILE"]; lf == nil || !strings.HasPrefix(*lf, "/data/") || !slices.Contains(mounts["otel-collector"], "/data") {
		t.Errorf("the Collector's LOGS_FILE %v is not in the mounted ./data", lf)
	}
	if col.User != job.User {
		t.Errorf("the Collector runs as %q, not the job's user %q: its log file in ./data would not be theirs", col.User, job.User)
	}
	// NVML's process list has host PIDs: per-process GPU memory needs them.
	if job.Pid != "host" {
		t.Errorf("anonymize's pid is %q: in its own PID namespace its GPU memory is not recorded (pid: host)", job.Pid)
	}
	// The images run the releases the stack test builds from source.
	for _, c := range []struct{ service, module, image string }{
		{"jaeger", "github.com/jaegertracing/jaeger", "jaegertracing/jaeger:" + imageTag(t, testbuildVersion(t, "jaeger", "github.com/jaegertracing/jaeger"), "v1", 63, "2.")},
		{"prometheus", "github.com/prometheus/prometheus", "prom/prometheus:" + imageTag(t, testbuildVersion(t, "prometheus", "github.com/prometheus/prometheus"), "v0", 300, "v3.")},
	} {
		if got := project.Services[c.service].Image; got != c.image {
			t.Errorf("compose runs %s, but deploy/testbuild/%s builds and tests %s (want image %s)", got, c.service, c.module, c.image)
		}
	}
	dash := readYAML(t, "deploy/grafana/provisioning/dashboards/dashboards.yaml")
	path, _ := m(m(list(dash["providers"])[0])["options"])["path"].(string)
	if !slices.Contains(mounts["grafana"], path) {
		t.Errorf("dashboards are provisioned from %v, which nothing is mounted at", path)
	}
}

// testbuildVersion is the version of module that deploy/testbuild/dir
// requires.
func testbuildVersion(t *testing.T, dir, module string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(testutil.RepoRoot(t), "deploy", "testbuild", dir, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	f, err := modfile.ParseLax("go.mod", data, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range f.Require {
		if r.Mod.Path == module {
			return r.Mod.Version
		}
	}
	t.Fatalf("deploy/testbuild/%s/go.mod does not require %s", dir, module)
	return ""
}

// imageTag maps a Go module version to the image tag of the release it
// was tagged with: version v<from>.<base+N>.P is tag <to>N.P. Jaeger tags
// v1.(63+N).P with v2.N.P (v1.76.0 is 2.13.0); Prometheus's v0.3NN.P is
// its 3.NN.P.
func imageTag(t *testing.T, v, from string, base int, to string) string {
	t.Helper()
	var minor, patch int
	if _, err := fmt.Sscanf(v, from+".%d.%d", &minor, &patch); err != nil || minor < base {
		t.Fatalf("module version %s is not of the form %s.(%d+N).P", v, from, base)
	}
	return fmt.Sprintf("%s%d.%d", to, minor-base, patch)
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

// TestKubernetesJob checks the Indexed Job: shards line up with
// completions, one GPU per pod, the dataset mounted, OTLP to a collector.
func TestKubernetesJob(t *testing.T) {
	job := readYAML(t, "deploy/k8s/anonymize-batch-job.yaml")
	if job["kind"] != "Job" || job["apiVersion"] != "batch/v1" {
		t.Fatalf("not a batch/v1 Job: %v %v", job["apiVersion"], job["kind"])
	}
	spec := m(job["spec"])
	if spec["completionMode"] != "Indexed" {
		t.Errorf("completionMode %v, want Indexed (pods get JOB_COMPLETION_INDEX)", spec["completionMode"])
	}
	pod := m(m(spec["template"])["spec"])
	containers := list(pod["containers"])
	if len(containers) != 1 {
		t.Fatalf("%d containers, want 1", len(containers))
	}
	c := m(containers[0])
	env := map[string]string{}
	for _, e := range list(c["env"]) {
		env[m(e)["name"].(string)], _ = m(e)["value"].(string)
	}
	completions := fmt.Sprint(spec["completions"])
	if env["ANONYMIZE_SHARD_COUNT"] != completions || fmt.Sprint(spec["parallelism"]) != completions {
		t.Errorf("ANONYMIZE_SHARD_COUNT %q, completions %s, parallelism %v: must be equal", env["ANONYMIZE_SHARD_COUNT"], completions, spec["parallelism"])
	}
	if !strings.Contains(env["OTEL_EXPORTER_OTLP_ENDPOINT"], "otel-collector") {
		t.Errorf("OTLP endpoint %q is not a collector service", env["OTEL_EXPORTER_OTLP_ENDPOINT"])
	}
	if gpu := m(m(c["resources"])["limits"])["nvidia.com/gpu"]; fmt.Sprint(gpu) != "1" {
		t.Errorf("GPU limit %v, want 1 per pod", gpu)
	}
	args := toStrings(list(c["args"]))
	if len(args) < 3 || args[0] != "batch" {
		t.Fatalf("args %v, want batch ... IN OUT", args)
	}
	mounted := map[string]bool{}
	for _, vm := range list(c["volumeMounts"]) {
		mounted[m(vm)["mountPath"].(string)] = true
	}
	for _, dir := range args[len(args)-2:] {
		ok := false
		for mp := range mounted {
			ok = ok || strings.HasPrefix(dir, mp+"/")
		}
		if !ok {
			t.Errorf("%s is on no mounted volume", dir)
		}
	}
	if !pinned(c["image"].(string)) {
		t.Errorf("image %v is not pinned", c["image"])
	}
	if sc := m(pod["securityContext"]); sc["runAsNonRoot"] != true {
		t.Error("pods must run as non-root, as the image does")
	}
	// Pods running at once must not share one set of series.
	podName := false
	for _, e := range list(c["env"]) {
		ref := m(m(m(e)["valueFrom"])["fieldRef"])
		podName = podName || (m(e)["name"] == "POD_NAME" && ref["fieldPath"] == "metadata.name")
	}
	if !podName || !strings.Contains(env["OTEL_RESOURCE_ATTRIBUTES"], "service.instance.id=$(POD_NAME)") {
		t.Errorf("OTEL_RESOURCE_ATTRIBUTES %q: each pod needs service.instance.id=$(POD_NAME), from the downward API", env["OTEL_RESOURCE_ATTRIBUTES"])
	}
	// The CPU request is sized in the manifest's comment: about 36 ms of
	// CPU a 1080p frame, 4.3 cores at 120 frames/s.
	if cpu, _ := strconv.ParseFloat(fmt.Sprint(m(m(c["resources"])["requests"])["cpu"]), 64); cpu < 4.3 {
		t.Errorf("CPU request %v is below the 4.3 cores libx264 and the pipeline need at 120 frames/s", cpu)
	}
}
