package export

import (
	"context"
	"log/slog"
	"testing"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/anonymize-dev/anonymize/telemetry"
)

// BenchmarkFrameTelemetry measures what one frame's instrumentation costs
// the pipeline with OTLP and W&B both on: the 14 spans and the metrics of
// a frame, exported to in-process receivers.
func BenchmarkFrameTelemetry(b *testing.B) {
	_, _, getenv := localSinks(b, nil)
	tel, err := Setup(context.Background(), Options{
		Sinks:  []Sink{SinkOTLP, SinkWandB},
		Getenv: getenv,
		Log:    slog.New(slog.DiscardHandler),
	})
	if err != nil {
		b.Fatal(err)
	}
	defer tel.Shutdown(context.Background(), 0, false)
	in, err := telemetry.NewInstruments()
	if err != nil {
		b.Fatal(err)
	}
	tr := otel.Tracer("bench")
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		fctx, root := tr.Start(ctx, "process_single_frame", trace.WithNewRoot(),
			trace.WithAttributes(attribute.Int("frame.index", i), attribute.Float64("frame.timestamp_ms", float64(i)*33.3)))
		for _, name := range []string{"decode", "wait_for_inference"} {
			_, s := tr.Start(fctx, name)
			s.End()
		}
		for _, model := range []string{"person_detection", "pose_estimation"} {
			mctx, m := tr.Start(fctx, model)
			for _, step := range []string{"preprocess", "inference", "postprocess"} {
				_, s := tr.Start(mctx, step)
				s.SetAttributes(attribute.Int("batch.size", 3))
				s.End()
			}
			m.SetAttributes(attribute.Int("detections", 3))
			m.End()
		}
		for _, name := range []string{"wait_for_encode", "mask", "encode"} {
			_, s := tr.Start(fctx, name)
			s.End()
		}
		recordFrameMetrics(fctx, in, 3)
		root.SetAttributes(attribute.Int("people.count", 3))
		root.End()
	}
}

func recordFrameMetrics(ctx context.Context, in *telemetry.Instruments, n int64) {
	in.DetectedPeople.Record(ctx, n)
	in.PeoplePerFrame.Record(ctx, n)
	in.Frames.Add(ctx, 1)
	in.Masks.Add(ctx, n)
}
