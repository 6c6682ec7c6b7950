package export

import (
	"context"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/anonymize-dev/anonymize/telemetry"
)

func TestParseSinks(t *testing.T) {
	env := func(kv ...string) func(string) string {
		m := map[string]string{}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return func(k string) string { return m[k] }
	}
	tests := []struct {
		value   string
		getenv  func(string) string
		want    string
		wantErr string
	}{
		{"", env(), "", ""},
		{"", env("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4317"), "otlp", ""},
		{"", env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://c:4318/v1/traces"), "otlp", ""},
		{"none", env("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4317"), "", ""},
		{"otlp,wandb", env(), "otlp,wandb", ""},
		{" WandB , otlp,otlp", env(), "wandb,otlp", ""},
		{"console", env(), "console", ""},
		{"otlp,jaeger", env(), "", `unknown telemetry sink "jaeger"`},
		{"none,otlp", env(), "", "cannot be combined"},
	}
	for _, tt := range tests {
		got, err := ParseSinks(tt.value, tt.getenv)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("ParseSinks(%q) error %v, want %q", tt.value, err, tt.wantErr)
			}
			continue
		}
		var names []string
		for _, s := range got {
			names = append(names, string(s))
		}
		if err != nil || strings.Join(names, ",") != tt.want {
			t.Errorf("ParseSinks(%q) = %v, %v; want %q", tt.value, names, err, tt.want)
		}
	}
}

// TestStageMetrics checks the span processor that turns spans into the
// stage-duration histogram, with stages below a frame's children
// qualified by their parent.
func TestStageMetrics(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	sm, err := newStageMetrics(mp.Meter("test"))
	if err != nil {
		t.Fatal(err)
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sm))
	tr := tp.Tracer("test")
	ctx := context.Background()
	for frame := 0; frame < 3; frame++ {
		fctx, root := tr.Start(ctx, "process_single_frame")
		_, d := tr.Start(fctx, "decode")
		d.End()
		for _, model := range []string{"person_detection", "pose_estimation"} {
			mctx, m := tr.Start(fctx, model)
			batches := 1
			if model == "pose_estimation" {
				batches = 2
			}
			for b := 0; b < batches; b++ {
				for _, step := range []string{"preprocess", "inference", "postprocess"} {
					_, s := tr.Start(mctx, step)
					s.End()
				}
			}
			m.End()
		}
		root.End()
	}
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(ctx, &rm); err != nil {
		t.Fatal(err)
	}
	counts := map[string]uint64{}
	for _, s := range rm.ScopeMetrics {
		for _, m := range s.Metrics {
			if m.Name != telemetry.MetricStageDuration {
				continue
			}
			if m.Unit != "s" {
				t.Errorf("unit %q, want s", m.Unit)
			}
			for _, p := range m.Data.(metricdata.Histogram[float64]).DataPoints {
				v, _ := p.Attributes.Value(attribute.Key(telemetry.AttrStage))
				counts[v.AsString()] += p.Count
			}
		}
	}
	want := map[string]uint64{
		"process_single_frame": 3, "decode": 3, "person_detection": 3, "pose_estimation": 3,
		"person_detection.preprocess": 3, "person_detection.inference": 3, "person_detection.postprocess": 3,
		"pose_estimation.preprocess": 6, "pose_estimation.inference": 6, "pose_estimation.postprocess": 6,
	}
	for k, v := range want {
		if counts[k] != v {
			t.Errorf("stage %s: %d samples, want %d", k, counts[k], v)
		}
	}
	if len(counts) != len(want) {
		t.Errorf("stages %v, want exactly %v", counts, want)
	}
	if len(sm.live) != 0 {
		t.Errorf("%d spans still tracked after all ended", len(sm.live))
	}
}
